"""A prediction table: one row per image file of a folder or archive, unreadable ones included.

Columns: filename, label, label_index (the model's class order; CIFAKE: 0 = FAKE, 1 = REAL),
prob_<class> per class, verdict (the label, or UNSURE) and its reason, error (empty unless the
file could not be decoded). A FAKE/REAL detector also gets pixel_verdict (the pixels' own) and
evidence (what the file's metadata says of its origin); verdict and reason are then combined by
the provenance rules (a signed or declared AI origin decides; absence proves nothing).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from realfake.atomic import write_text
from realfake.data.decode import describe_failure
from realfake.data.layout import UNLABELLED, source_folder
from realfake.data.loader import SkippedImagesWarning, load_images
from realfake.data.sources import open_source
from realfake.errors import DataError
from realfake.inference.scorer import Scored, Scorer

if TYPE_CHECKING:
    from realfake.provenance import Combined, Provenance


@dataclass
class Predictions:
    table: pd.DataFrame  # one row per image file, sorted by file name
    ignored: list[str]  # files left out because their extension is not an image's


def prediction_table(
    scorer: Scorer,
    source: str | Path,
    *,
    progress: bool = False,
    source_level: int | None = None,
) -> Predictions:
    """The table for every image file under ``source``, decided by the scorer's rule.

    ``source_level``: each image's source (a generator, a camera, a data set) is the folder at
    that level of its path (0: the top folder), in a ``source`` column after the file name, as
    ``data.source_level`` reads a training source; an image outside such a folder is an error
    naming it, before anything is scored.

    Images are decoded by the data layer's loader (its cache and parallel decoding), at the
    model's size and resize policy, so they are the pixels evaluation scores; a model whose
    spec scores native tiles reads every file at its own size instead (``native_scores``).
    """
    classes = scorer.classes
    if source_level is not None:
        where = str(source)
        names = [e.name for e in open_source(source).listing().images]
        by_name = {name: source_folder(name, source_level, where) for name in names}
    if scorer.spec.tiles:
        names, scored, skipped, ignored = native_scores(scorer, source)
    else:
        with warnings.catch_warnings():
            # Each unreadable file becomes an error row below, which says more than one warning.
            warnings.simplefilter("ignore", SkippedImagesWarning)
            data = load_images(source, scorer.image_size, scorer.spec.resize, labelled=False)
        split = data.splits[UNLABELLED]
        names, skipped = split.names, data.skipped
        ignored = list(getattr(data, "ignored_files", []))
        scored = scorer.score(split.images, sizes=split.sizes, progress=progress)
    probs = scored.probs
    predicted = scorer.decide(probs)
    said = scorer.verdicts(probs, scored.distances, scored.sizes)
    good = pd.DataFrame(
        {
            "filename": names,
            "label": [classes[i] for i in predicted.tolist()],
            "label_index": pd.array(predicted, dtype="Int64"),
            **{f"prob_{c}": probs[:, k] for k, c in enumerate(classes)},
            "verdict": [verdict for verdict, _ in said],
            "reason": [reason for _, reason in said],
            "error": "",
        }
    )
    bad = pd.DataFrame(
        {
            "filename": [name for name, _ in skipped],
            "label": "",
            "label_index": pd.array([pd.NA] * len(skipped), dtype="Int64"),
            **{f"prob_{c}": np.full(len(skipped), np.nan) for c in classes},
            "verdict": "",
            "reason": "",
            "error": [reason for _, reason in skipped],
        }
    )
    if set(classes) == {"FAKE", "REAL"}:
        add_provenance(good, source)
        bad["pixel_verdict"] = bad["evidence"] = ""
    frames = [f for f in (good, bad) if len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else good
    table = table[[c for c in good.columns if c != "error"] + ["error"]]
    table = table.sort_values("filename", kind="stable", ignore_index=True)
    if source_level is not None:
        table.insert(1, "source", [by_name[name] for name in table["filename"]])
    return Predictions(table, ignored)


def verdicts_by_source(table: pd.DataFrame) -> pd.DataFrame:
    """Counts of each verdict per source (rows: sources; columns: verdicts, then unreadable
    files), from a table with a ``source`` column."""
    errors = table["error"].fillna("").astype(str) != ""
    said = table["verdict"].where(~errors, "unreadable").fillna("").astype(str)
    counts = pd.crosstab(table["source"], said).rename_axis(index=None, columns=None)
    ordered = [c for c in counts.columns if c != "unreadable"]
    return counts[ordered + (["unreadable"] if "unreadable" in counts.columns else [])]


NATIVE_CHUNK = 16  # images decoded at their own size at once: bounded memory for large photos


def native_scores(
    scorer: Scorer, source: str | Path
) -> tuple[list[str], Scored, list[tuple[str, str]], list[str]]:
    """Every image file of ``source`` scored at its own size by the spec's tiles, a few files at
    a time: (names, scores, unreadable files with why, files left out by extension)."""
    src = open_source(source)
    listing = src.listing()
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    parts: list[Scored] = []
    chunk: list[torch.Tensor] = []

    def flush() -> None:
        if chunk:
            parts.append(scorer.score(chunk))
            chunk.clear()

    for entry, data in src.read(listing.images):
        if isinstance(data, Exception):
            skipped.append((entry.name, describe_failure(data)))
            continue
        try:
            chunk.append(scorer.predictor.native(data))
        except DataError as exc:
            skipped.append((entry.name, str(exc).split(": ", 1)[-1]))
            continue
        names.append(entry.name)
        if len(chunk) == NATIVE_CHUNK:
            flush()
    flush()
    n = len(scorer.classes)
    probs = np.concatenate([p.probs for p in parts]) if parts else np.zeros((0, n))
    with_distances = bool(parts) and all(p.distances is not None for p in parts)
    distances = np.concatenate([p.distances for p in parts]) if with_distances else None
    with_sizes = bool(parts) and all(p.sizes is not None for p in parts)
    sizes = np.concatenate([p.sizes for p in parts]) if with_sizes else None
    return names, Scored(probs, distances, sizes), skipped, list(listing.ignored)


def add_provenance(table: pd.DataFrame, source: str | Path) -> None:
    """Evidence besides pixels, per image: what the file's metadata says about its origin, and
    the verdict combined by ``realfake.provenance.RULES`` (columns pixel_verdict, evidence;
    verdict and reason become the combined ones)."""
    from realfake.data.sources import open_source
    from realfake.provenance import read_provenance

    src = open_source(source)
    wanted = {name: i for i, name in enumerate(table["filename"])}
    entries = [e for e in src.listing().images if e.name in wanted]
    pixel, evidence = list(table["verdict"]), [""] * len(table)
    verdict, reason = list(table["verdict"]), list(table["reason"])
    for entry, data in src.read(entries):
        if isinstance(data, Exception):
            continue
        i = wanted[entry.name]
        found = read_provenance(data, entry.name)
        evidence[i] = " | ".join(found.lines())
        verdict[i], reason[i], _ = combined_verdict(pixel[i], reason[i], found)
    table["pixel_verdict"], table["verdict"], table["reason"] = pixel, verdict, reason
    table["evidence"] = evidence


def combined_verdict(
    pixel_verdict: str, pixel_reason: str, found: Provenance
) -> tuple[str, str, Combined]:
    """The verdict and reason of one file, pixels and provenance combined (predict's columns,
    and the service's answer): a provenance rule that fires says so, the pixels' reason beside
    it; otherwise the pixel verdict and its reason stand."""
    from realfake.provenance import combine

    combined = combine(pixel_verdict, found)
    if combined.rule == "pixels":
        return pixel_verdict, pixel_reason, combined
    return combined.verdict, "; ".join(combined.reasons) + f" (pixels: {pixel_reason})", combined


def write_predictions(table: pd.DataFrame, path: str | Path, scorer: Scorer) -> tuple[Path, Path]:
    """The table as CSV and, beside it, ``NAME.meta.json``: the model and the decision rule.

    Both written atomically; empty cells where an error row has no value.
    """
    path = Path(path)
    write_text(path, table.to_csv(index=False, float_format="%.6f"))
    meta = path.with_name(f"{path.stem}.meta.json")
    record = {
        "predictions": path.name,
        "model": scorer.spec.model,
        "checkpoint": None if scorer.checkpoint is None else scorer.checkpoint.name,
        "backend": scorer.backend,
        "classes": scorer.classes,
        "decision": scorer.rule_record(),
        "unsure": {
            "band": None if scorer.rule.frozen is None else scorer.rule.frozen.unsure_margin,
            "feature_distance": scorer.ood is not None,
            "feature_distance_missing": scorer.ood_why or None,
        },
    }
    write_text(meta, json.dumps(record, indent=2) + "\n")
    return path, meta
