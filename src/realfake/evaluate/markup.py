"""A document of headings, paragraphs, tables and images, rendered as Markdown and as HTML.

Reports and comparison tables are written once as blocks and rendered twice, so report.md and
report.html can never disagree (and no Markdown-to-HTML dependency is needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Protocol

from realfake.atomic import write_text

Cell = str | int | float | None

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}table{border-collapse:collapse;margin:0.5rem 0 1rem}"
    "th,td{border:1px solid #ccc;padding:0.25rem 0.6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%;margin:0.5rem 0}"
)


def fmt(value: Cell, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` decimals, missing values as an en dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class Block(Protocol):
    def md(self) -> str: ...
    def html(self) -> str: ...


@dataclass
class Heading:
    text: str

    def md(self) -> str:
        return f"## {self.text}"

    def html(self) -> str:
        return f"<h2>{escape(self.text)}</h2>"


@dataclass
class Paragraph:
    text: str

    def md(self) -> str:
        return self.text

    def html(self) -> str:
        return f"<p>{escape(self.text)}</p>"


@dataclass
class Items:
    pairs: list[tuple[str, Cell]]

    def md(self) -> str:
        return "\n".join(f"- **{k}**: {fmt(v)}" for k, v in self.pairs)

    def html(self) -> str:
        lines = "".join(f"<li><b>{escape(k)}</b>: {escape(fmt(v))}</li>" for k, v in self.pairs)
        return f"<ul>{lines}</ul>"


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]

    def md(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |"]
        lines.append("| " + " | ".join(["---"] + ["---:"] * (len(self.header) - 1)) + " |")
        for row in self.rows:
            lines.append("| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |")
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(fmt(c))}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Image:
    path: str  # relative to the document
    caption: str

    def md(self) -> str:
        return f"![{self.caption}]({self.path.replace(' ', '%20')})"

    def html(self) -> str:
        return (
            f'<figure><img src="{escape(self.path)}" alt="{escape(self.caption)}">'
            f"<figcaption>{escape(self.caption)}</figcaption></figure>"
        )


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def markdown(self) -> str:
        return "\n\n".join([f"# {self.title}", *(b.md() for b in self.blocks)]) + "\n"

    def html(self) -> str:
        head = (
            f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{escape(self.title)}'
            f"</title><style>{_STYLE}</style></head><body>"
        )
        parts = [head, f"<h1>{escape(self.title)}</h1>", *(b.html() for b in self.blocks)]
        return "\n".join([*parts, "</body></html>"]) + "\n"

    def write(self, md_path: Path) -> Path:
        """Write ``md_path`` and its HTML twin (same stem); returns the Markdown path."""
        write_text(md_path, self.markdown())
        write_text(md_path.with_suffix(".html"), self.html())
        return md_path
