"""MkDocs hook: publish BENCHMARKS.md's figures beside the page that includes it.

docs/benchmarks.md includes the repository's BENCHMARKS.md (pymdownx.snippets), whose image
links point at ``benchmarks/figures/*.png`` relative to the repository root. The same relative
path from docs/benchmarks.md is ``benchmarks/figures/*.png`` inside the site, so each figure is
added there as a generated file: the page shows the figures the benchmarks last wrote, never a
stale copy, and strict mode still fails on a link to a figure that does not exist.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

FIGURES = "benchmarks/figures"


def on_files(files: Files, config) -> Files:
    root = Path(config["config_file_path"]).resolve().parent
    for path in sorted((root / FIGURES).glob("*.png")):
        files.append(File.generated(config, f"{FIGURES}/{path.name}", abs_src_path=str(path)))
    return files
