"""Cross-source results: each trained run scored on the test split of every source.

A study with ``test_on`` (source name -> data overrides, e.g. ``[data=faces_256]``) gets a train
× test table: one row per arm (the sources it was trained on), one column per test source, with
ROC-AUC (FAKE scored against REAL, threshold-free: how well the model ranks that source's fakes
above its reals) and accuracy (the run's own rule), mean ± std over seeds and, per cell, the
bootstrap 95% interval of the ROC-AUC pooled over seeds' images when one seed. A test source is
the test split that source's own data config carves (faces-256: 300 + 300 images, seed 0; at most
MAX_TEST_IMAGES, a fixed stratified subset), read
at the model's input size by its resize policy, or at the source's own size (data.native, at
most the run's data.native_max_side) when the model scores native tiles, exactly as `realfake
predict` would read those files.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from realfake.atomic import write_text
from realfake.data.config import DataConfig
from realfake.data.dataset import load_splits
from realfake.data.loader import ImageSplit
from realfake.errors import DataError
from realfake.evaluate.markup import Document, Paragraph, Table
from realfake.inference import Scorer
from realfake.inference.splits import native_options
from realfake.train import compose

CROSS_FILE = "cross_source"  # .csv and .md in the study folder
RESAMPLES = 1000
# Test images per source at most: a fixed stratified subset (seed 0) of larger test splits, the
# same for every run (CIFAKE's 20,000 would cost a tiled 256-px model an hour on a CPU; 2,000
# put a ROC-AUC near 0.8 within about ±0.02).
MAX_TEST_IMAGES = 2000


def test_split(overrides: list[str], scorer: Scorer) -> ImageSplit:
    """The test split a source's data config carves, in the model's classes and input rule."""
    data: DataConfig = replace(
        OmegaConf.to_object(compose(overrides).data),  # type: ignore[arg-type]
        classes=list(scorer.classes),
        extra_sources={},
    )
    data = replace(data, image_size=scorer.image_size, resize=scorer.spec.resize)
    if scorer.spec.tiles:
        # Each image at its own size (capped as the run's own data was), as predict reads it:
        # a native model's test images are tiled, never squashed to the source config's size.
        native = native_options(scorer.predictor)
        data = replace(
            data,
            tiles=scorer.spec.tiles,
            native=True,
            native_max_side=native["native_max_side"],
            native_max_gb=native["native_max_gb"],
            augment=replace(data.augment, crop_padding=0),  # no training here: no padding
        )
    test = load_splits(data).test
    if test is None or len(test) == 0:
        raise DataError(
            f"test source {' '.join(overrides)} has no test split (set data.test_fraction)"
        )
    if len(test) <= MAX_TEST_IMAGES:
        return test
    labels = test.labels.numpy()
    rng = np.random.default_rng(0)
    keep = []
    for k in np.unique(labels):  # the same share of each class as the whole split
        members = np.flatnonzero(labels == k)
        take = round(MAX_TEST_IMAGES * len(members) / len(labels))
        keep.append(rng.choice(members, take, replace=False))
    return test.subset(np.sort(np.concatenate(keep)))


def score_cell(scorer: Scorer, test: ImageSplit) -> dict[str, Any]:
    """ROC-AUC of P(positive) and accuracy of the run's decisions on one test split."""
    from sklearn.metrics import roc_auc_score

    images = test.images
    if scorer.spec.tiles:
        probs = scorer.probabilities([image for image in images])
    else:
        probs = scorer.probabilities(images)
    labels = test.labels.numpy()
    positive = 1 if scorer.positive is None else scorer.positive
    correct = scorer.decide(probs) == labels
    both = len(set(labels.tolist())) == 2
    auc = roc_auc_score(labels == positive, probs[:, positive]) if both else math.nan
    return {
        "n": len(labels),
        "roc_auc": float(auc),
        "accuracy": float(correct.mean()),
        "p_positive": probs[:, positive],
        "labels": labels,
    }


def auc_interval(p: np.ndarray, labels: np.ndarray, positive: int) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the ROC-AUC (stratified by class, seed 0)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(labels == positive), np.flatnonzero(labels != positive)
    if len(pos) == 0 or len(neg) == 0:
        return math.nan, math.nan
    values = []
    for _ in range(RESAMPLES):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        values.append(roc_auc_score(labels[idx] == positive, p[idx]))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def cross_source_table(
    run_dirs: list[Path], arms: list[str], test_on: dict[str, list[str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per run × test source rows, the arm × test source summary)."""
    rows = []
    for run_dir, arm in zip(run_dirs, arms, strict=True):
        scorer = Scorer.open(run_dir)
        positive = 1 if scorer.positive is None else scorer.positive
        for name, overrides in test_on.items():
            cell = score_cell(scorer, test_split(overrides, scorer))
            lo, hi = auc_interval(cell.pop("p_positive"), cell.pop("labels"), positive)
            rows.append(
                {"arm": arm, "run": Path(run_dir).name, "test": name, **cell,
                 "roc_auc_lo": lo, "roc_auc_hi": hi}
            )  # fmt: skip
    runs = pd.DataFrame(rows)
    summary = (
        runs.groupby(["arm", "test"], sort=False)
        .agg(
            seeds=("run", "count"),
            roc_auc=("roc_auc", "mean"),
            roc_auc_std=("roc_auc", "std"),
            roc_auc_lo=("roc_auc_lo", "min"),
            roc_auc_hi=("roc_auc_hi", "max"),
            accuracy=("accuracy", "mean"),
            accuracy_std=("accuracy", "std"),
            n=("n", "first"),
        )
        .reset_index()
    )
    return runs, summary


def write_cross_source(summary: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> Path:
    """The train × test table as Markdown (and HTML), and every cell per run as CSV."""
    write_text(out_dir / f"{CROSS_FILE}.csv", runs.to_csv(index=False, float_format="%.6g"))
    tests = list(dict.fromkeys(summary["test"]))
    cells: list[list[Any]] = []
    for arm, group in summary.groupby("arm", sort=False):
        by_test = {r["test"]: r for _, r in group.iterrows()}
        cells.append([arm, *(_cell(by_test.get(t)) for t in tests)])
    doc = Document(
        "cross-source: ROC-AUC [95% CI] and accuracy, trained on (rows) × tested on (columns)",
        [
            Paragraph(
                "ROC-AUC ranks each test source's FAKE images against its REAL ones (0.5: "
                "chance); accuracy uses the run's own rule. With several seeds: mean ± std, "
                "and the interval spans the seeds' bootstrap intervals."
            ),
            Table(["trained on", *tests], cells),
        ],
    )
    return doc.write(out_dir / f"{CROSS_FILE}.md")


def _cell(row: pd.Series | None) -> str:
    if row is None:
        return ""
    spread = "" if row["seeds"] < 2 else f" ± {row['roc_auc_std']:.3f}"
    return (
        f"{row['roc_auc']:.3f}{spread} [{row['roc_auc_lo']:.3f}, {row['roc_auc_hi']:.3f}]; "
        f"acc {row['accuracy']:.3f} (n {int(row['n'])})"
    )
