"""A one-page HTML summary of a prediction table, for people who will not read the CSV.

Plain HTML with inline CSS: no JavaScript, nothing fetched (thumbnails are embedded as base64
PNG data URIs), every text escaped, so the page opens offline and cannot run what a file name
carries. It says which model and rule decided, how many images got each verdict, shows the
most confident and the most uncertain images, and what the verdicts can and cannot mean.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from realfake.atomic import write_text
from realfake.errors import ConfigError, RealfakeError
from realfake.inference.scorer import Scorer
from realfake.inference.table import verdicts_by_source
from realfake.inference.verdict import UNSURE

THUMB = 128  # px, the longest side of a thumbnail (and of its box on the page)
UNREADABLE = "unreadable"
COLOURS = {"FAKE": "#c62828", "REAL": "#2e7d32", UNSURE: "#f9a825", UNREADABLE: "#9e9e9e"}
OTHER_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#37474f")

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em;
       color: #212121; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin-top: 0; }
dl.setup { display: grid; grid-template-columns: max-content auto; gap: 0.3em 1em; }
dl.setup dt { font-weight: 600; }
dl.setup dd { margin: 0; }
code { background: #f3f3f3; padding: 0 0.2em; }
.bar { display: flex; height: 1.6em; border: 1px solid #bbb; margin: 0.8em 0; max-width: 40em; }
.bar div { height: 100%; }
table.counts { border-collapse: collapse; }
table.counts th, table.counts td { padding: 0.2em 0.8em; border-bottom: 1px solid #eee;
                                   text-align: left; }
table.counts td.n, table.counts td.share { text-align: right; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure.card { margin: 0; width: 15em; border: 1px solid #ddd; padding: 0.5em; font-size: 0.85em; }
figure.card .pic { width: 128px; height: 128px; display: flex; align-items: center;
                   justify-content: center; background: #f5f5f5; margin-bottom: 0.4em; }
figure.card img.small { image-rendering: pixelated; }
.noimg { color: #888; font-size: 0.9em; }
.name { font-family: monospace; word-break: break-all; }
.verdict { font-weight: 700; }
.reason, .evidence { color: #444; }
.evidence { font-style: italic; }
.note li { margin-bottom: 0.4em; }
"""


@dataclass(frozen=True)
class _Example:
    row: pd.Series
    probability: str  # e.g. "P(FAKE) = 0.973"


def write_summary(
    table: pd.DataFrame,
    scorer: Scorer,
    source: str | Path,
    path: str | Path,
    *,
    examples: int = 8,
) -> Path:
    """Write the HTML summary of ``table`` (images of ``source`` decided by ``scorer``)."""
    if examples < 0:
        raise ConfigError(f"examples {examples}: expected a number of images per section >= 0")
    readable = table[_errors(table) == ""]
    picks = _pick_examples(readable, scorer, examples)
    wanted = {name for _, chosen in picks for name in (e.row["filename"] for e in chosen)}
    thumbs, thumbs_missing = _thumbnails(source, wanted)
    # Every class and UNSURE, then any other verdict a rule gave, in a fixed colour each.
    said = readable["verdict"].fillna("").astype(str)
    order = [*scorer.classes, UNSURE]
    order += sorted(set(said) - set(order))
    colours = _colours(order)
    parts = [
        _header(table, scorer, source),
        _counts(table, order, colours),
        _by_source(table),
        _notes("evidence" in table.columns),
    ]
    if thumbs_missing:
        parts.append(f'<p class="noimg">No thumbnails: {_e(thumbs_missing)}.</p>')
    for title, chosen in picks:
        parts.append(f"<h2>{_e(title)}</h2>")
        if chosen:
            cards = "\n".join(_card(e, thumbs.get(e.row["filename"]), colours) for e in chosen)
            parts.append(f'<div class="grid">\n{cards}\n</div>')
        else:
            parts.append("<p>None.</p>")
    parts.append(_unreadable(table))
    name = _e(str(source))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>realfake: {name}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )
    # ASCII only (other characters as references): the page reads the same whatever the
    # locale's encoding that writes it or the browser's guess.
    return write_text(path, page.encode("ascii", "xmlcharrefreplace").decode("ascii"))


def _by_source(table: pd.DataFrame) -> str:
    """Verdicts counted per source (``predict --source-level``), or nothing."""
    if "source" not in table.columns:
        return ""
    counts = verdicts_by_source(table)
    head = "".join(f"<th>{_e(c)}</th>" for c in counts.columns)
    rows = "".join(
        f"<tr><th>{_e(source)}</th>" + "".join(f"<td>{int(n)}</td>" for n in row) + "</tr>"
        for source, row in counts.iterrows()
    )
    return (
        f'<h2>By source</h2>\n<table class="sources"><tr><th>source</th>{head}</tr>{rows}</table>'
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _errors(table: pd.DataFrame) -> pd.Series:
    return table["error"].fillna("").astype(str)


# --- header: model, folder, date, rule, UNSURE set-up ---------------------------------------


def _header(table: pd.DataFrame, scorer: Scorer, source: str | Path) -> str:
    checkpoint = "no checkpoint file" if scorer.checkpoint is None else scorer.checkpoint.name
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    files = len(table)
    return "\n".join(
        [
            f"<h1>What the model <code>{_e(scorer.spec.model)}</code> says about "
            f"<code>{_e(str(source))}</code></h1>",
            f'<p class="meta">checkpoint {_e(checkpoint)} ({_e(scorer.backend)}) &middot; '
            f"{_e(date)} &middot; {files} image file{'' if files == 1 else 's'}</p>",
            '<dl class="setup">',
            f"<dt>Decision rule</dt><dd>{_e(rule_in_words(scorer))}<br>"
            f"<code>{_e(scorer.describe_rule())}</code></dd>",
            f"<dt>UNSURE near the threshold</dt><dd>{_e(band_in_words(scorer))}</dd>",
            f"<dt>UNSURE for unfamiliar images</dt><dd>{_e(ood_in_words(scorer))}</dd>",
            "</dl>",
        ]
    )


def rule_in_words(scorer: Scorer) -> str:
    """The decision rule in plain words (the summary page and the service's model card)."""
    rule, classes = scorer.rule, scorer.classes
    if rule.threshold is None or rule.positive is None:
        return "Each image gets the class the model gives the highest probability."
    positive = classes[rule.positive]
    other = classes[1 - rule.positive]
    return (
        f"An image is called {positive} when the model's probability of {positive} is at least "
        f"{rule.threshold:.3f}, otherwise {other}."
    )


def band_in_words(scorer: Scorer) -> str:
    """The UNSURE band in plain words, or why there is none."""
    frozen = scorer.rule.frozen
    if frozen is None:
        return "off: the band comes with a frozen threshold, and this rule has none"
    if frozen.unsure_margin is None:
        return "none: no band was fitted with this model's frozen threshold"
    name = scorer.classes[scorer.rule.positive or 0]
    allowed = "" if frozen.target_error is None else f" more often than {frozen.target_error:.0%}"
    return (
        f"an image whose P({name}) is within {frozen.unsure_margin:.3f} of the threshold "
        f"{frozen.value:.3f} is UNSURE: on validation images, answers that close were "
        f"wrong{allowed}"
    )


def ood_in_words(scorer: Scorer) -> str:
    """The unfamiliar-image check in plain words, or why there is none."""
    ood = scorer.ood
    if ood is None:
        return f"not checked: {scorer.ood_why or 'no reference for these weights'}"
    return (
        f"an image whose features, at any of {len(ood.layers)} depths of the network, are "
        f"farther from the training images' than those of {ood.quantile:.0%} of validation "
        f"images is UNSURE; reference fitted on {ood.fitted_on}"
    )


# --- counts and bar ---------------------------------------------------------------------------


def _counts(table: pd.DataFrame, order: list[str], colours: dict[str, str]) -> str:
    errors = _errors(table) != ""
    said = table.loc[~errors, "verdict"].fillna("").astype(str).value_counts()
    counts = [(v, int(said.get(v, 0))) for v in order] + [(UNREADABLE, int(errors.sum()))]
    total = len(table)
    rows, segments = [], []
    for verdict, n in counts:
        share = n / total if total else 0.0
        colour = colours[verdict]
        label = "unreadable files" if verdict == UNREADABLE else verdict
        rows.append(
            f'<tr data-verdict="{_e(verdict)}"><th><span class="swatch" '
            f'style="background:{colour}"></span>{_e(label)}</th>'
            f'<td class="n">{n}</td><td class="share">{share:.1%}</td></tr>'
        )
        if n:
            segments.append(
                f'<div style="width:{100 * share:.3f}%;background:{colour}" '
                f'title="{_e(label)}: {n}"></div>'
            )
    return "\n".join(
        [
            "<h2>Verdicts</h2>",
            f'<div class="bar">{"".join(segments)}</div>',
            '<table class="counts">',
            "<tr><th>verdict</th><th>images</th><th>share</th></tr>",
            *rows,
            "</table>",
        ]
    )


def _colours(verdicts: list[str]) -> dict[str, str]:
    out = dict(COLOURS)
    others = [v for v in verdicts if v not in out]
    for i, v in enumerate(others):
        out[v] = OTHER_COLOURS[i % len(OTHER_COLOURS)]
    return out


# --- examples -------------------------------------------------------------------------------


def _pick_examples(
    readable: pd.DataFrame, scorer: Scorer, examples: int
) -> list[tuple[str, list[_Example]]]:
    """(section title, examples) per decided class, most confident first, then the most
    uncertain: UNSURE ones first, then those nearest the decision boundary."""
    classes = scorer.classes
    probs = readable[[f"prob_{c}" for c in classes]].to_numpy(dtype=np.float64)
    verdicts = readable["verdict"].fillna("").astype(str).to_numpy()
    sections = []
    for k, c in enumerate(classes):
        idx = np.flatnonzero(verdicts == c)
        order = idx[np.argsort(-probs[idx, k], kind="stable")][:examples]
        chosen = [_Example(readable.iloc[i], f"P({c}) = {probs[i, k]:.3f}") for i in order]
        sections.append((f"Most confident {c}", chosen))
    rule = scorer.rule
    if len(classes) == 2 and rule.positive is not None:
        # Arg-max over two classes is the threshold 0.5 on P(positive).
        boundary = 0.5 if rule.threshold is None else rule.threshold
        closeness = np.abs(probs[:, rule.positive] - boundary)
        name = classes[rule.positive]
        shown = [f"P({name}) = {p:.3f} (threshold {boundary:.3f})" for p in probs[:, rule.positive]]
        title = f"Most uncertain (UNSURE first, then P({name}) nearest {boundary:.3f})"
    else:
        top = -np.sort(-probs, axis=1)
        closeness = top[:, 0] - top[:, 1] if probs.shape[1] > 1 else np.ones(len(probs))
        shown = [f"top two probabilities {c:.3f} apart" for c in closeness]
        title = "Most uncertain (UNSURE first, then the closest top two probabilities)"
    order = np.lexsort((closeness, verdicts != UNSURE))[:examples]
    sections.append((title, [_Example(readable.iloc[i], shown[i]) for i in order]))
    return sections


def _card(example: _Example, thumb: tuple[str, int, int] | None, colours: dict[str, str]) -> str:
    row = example.row
    name = str(row["filename"])
    verdict = str(row["verdict"])
    colour = colours.get(verdict, COLOURS[UNREADABLE])
    if thumb is None:
        pic = '<span class="noimg">no preview</span>'
    else:
        uri, w, h = thumb
        small = ' class="small"' if max(w, h) < THUMB else ""
        scale = THUMB / max(w, h)
        pic = (
            f'<img{small} src="{uri}" width="{round(w * scale)}" height="{round(h * scale)}" '
            f'alt="{_e(name)}">'
        )
    lines = [
        f'<div class="pic">{pic}</div>',
        "<figcaption>",
        f'<span class="verdict" style="color:{colour}">{_e(verdict)}</span> '
        f"{_e(example.probability)}<br>",
        f'<span class="name">{_e(name)}</span><br>',
        f'<span class="reason">{_e(row["reason"])}</span>',
    ]
    evidence = row.get("evidence")
    if isinstance(evidence, str) and evidence:
        lines.append(f'<br><span class="evidence">{_e(evidence)}</span>')
    lines.append("</figcaption>")
    return '<figure class="card">' + "\n".join(lines) + "</figure>"


def _thumbnails(source: str | Path, names: set[str]) -> tuple[dict[str, tuple[str, int, int]], str]:
    """PNG data URI and size of a thumbnail per file name that decodes, and why none at all
    when the source itself cannot be read any more (else "")."""
    from realfake.data.sources import open_source

    if not names:
        return {}, ""
    try:
        src = open_source(source)
        entries = [e for e in src.listing().images if e.name in names]
        found = {}
        for entry, data in src.read(entries):
            if isinstance(data, Exception):
                continue
            thumb = _thumbnail(data)
            if thumb is not None:
                found[entry.name] = thumb
    except (RealfakeError, OSError) as exc:  # moved or unreadable since it was scored
        return {}, f"{source} cannot be read again ({exc})"
    return found, ""


def _thumbnail(data: bytes) -> tuple[str, int, int] | None:
    """A thumbnail of at most THUMB px (aspect kept), as a PNG data URI; None if undecodable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft("RGB", (THUMB, THUMB))  # decode large photos at 1/2..1/8 scale
            # Upright, as viewers show it (and as the model saw it: the loader applies EXIF).
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("RGB", "RGBA", "L", "LA"):
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            im.thumbnail((THUMB, THUMB))
            width, height = im.size
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    # Pillow raises many kinds for a broken file (OSError, ValueError, SyntaxError, struct and
    # zlib errors, DecompressionBombError); any of them only costs this image its preview.
    except Exception:
        return None
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, width, height


# --- notes and unreadable files -------------------------------------------------------------


def _notes(provenance: bool) -> str:
    items = [
        "<b>FAKE</b> and <b>REAL</b> are the model's best guess from the pixels (or, where the "
        "reason says so, what a file's origin metadata declares). The probability is the "
        "model's own score, not a guarantee: a model trained on one set of images is wrong "
        "more often on images unlike them (other cameras, generators, sizes, edits or "
        "compression).",
        "<b>UNSURE</b> means the model should not be trusted on that image: near its "
        "threshold, or unlike its training images. Look at it yourself or use other evidence.",
        "<b>Unreadable files</b> could not be decoded as images; they got no verdict.",
    ]
    if provenance:
        items.append(
            "<b>Evidence</b> is what a file's metadata says about its origin (C2PA, IPTC/XMP, "
            "EXIF, PNG text). A signed or declared AI origin can decide the verdict; the "
            "absence of provenance proves nothing: most images carry none, and metadata is "
            "easily stripped."
        )
    body = "\n".join(f"<li>{item}</li>" for item in items)
    return f'<h2>How to read this</h2>\n<ul class="note">\n{body}\n</ul>'


def _unreadable(table: pd.DataFrame, shown: int = 50) -> str:
    errors = _errors(table)
    bad = table[errors != ""]
    if bad.empty:
        return ""
    items = [
        f'<li><span class="name">{_e(name)}</span>: {_e(reason)}</li>'
        for name, reason in zip(bad["filename"][:shown], errors[errors != ""][:shown], strict=True)
    ]
    if len(bad) > shown:
        items.append(f"<li>and {len(bad) - shown} more (see the CSV's error column)</li>")
    return "<h2>Unreadable files</h2>\n<ul>\n" + "\n".join(items) + "\n</ul>"
