"""``evaluate(run_or_ckpt) -> EvalResult``: metrics.json, figures and the run's report."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from realfake.data.datamodule import ImageDataModule
from realfake.errors import RealfakeError
from realfake.evaluate import figures as F
from realfake.evaluate.bootstrap import bootstrap_ci
from realfake.evaluate.inference import probabilities
from realfake.evaluate.metrics import classification_metrics, decide, positive_class
from realfake.evaluate.sources import (
    EvalImages,
    labelled_split,
    own_split,
    run_datamodule,
    run_dir_of,
)
from realfake.evaluate.threshold import choose_threshold
from realfake.inference import Predictor

log = logging.getLogger(__name__)

CI_LEVEL = 0.95


@dataclass
class EvalResult:
    out_dir: Path
    metrics: dict[str, Any]  # classification_metrics(...) plus "ci"
    record: dict[str, Any]  # everything metrics.json holds: provenance and metrics
    figures: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    run_dir: Path | None = None


def to_jsonable(value: Any) -> Any:
    """Plain JSON types; NaN (an undefined metric) becomes null so any JSON reader accepts it."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def default_out_dir(checkpoint: Path, data: str | Path | None, split: str) -> Path:
    """The run directory for its own test split; a sub-folder of it for anything else."""
    run = run_dir_of(checkpoint)
    base = run if run is not None else checkpoint.parent / f"{checkpoint.stem}-eval"
    if data is None and split == "test":
        return base
    name = f"run-{split}" if data is None else f"{Path(str(data)).name or 'data'}-{split}"
    return base / "evaluations" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def frozen_threshold(
    predictor: Predictor,
    dm: ImageDataModule | None,
    why_no_data: str,
    criterion: str,
    batch_size: int,
    tta: bool,
) -> tuple[float | None, str]:
    """The binary threshold chosen on the run's validation split (else 0.5), and its origin."""
    if len(predictor.classes) != 2:
        return None, "arg-max (multi-class)"
    if dm is None or dm.val_split is None or len(dm.val_split) == 0:
        return 0.5, f"default 0.5 ({why_no_data or 'the run has no validation split'})"
    val = dm.val_split
    positive = positive_class(predictor.classes)
    p = probabilities(predictor, val.images, batch_size, tta)[:, positive]
    threshold = choose_threshold(val.labels.numpy(), p, positive, criterion)
    name = "accuracy" if criterion == "accuracy" else "Youden's J"
    return threshold, f"chosen on the run's validation split ({len(val)} images, max {name})"


def eval_images(
    predictor: Predictor, data: str | Path | None, split: str | None
) -> tuple[EvalImages, ImageDataModule | None, str]:
    """The images to score, the run's rebuilt data (for the threshold) or why it is missing."""
    try:
        dm = run_datamodule(predictor)
    except RealfakeError as exc:
        if data is None:
            raise type(exc)(
                f"cannot rebuild the run's data to find its {split or 'test'} split ({exc}); "
                "pass labelled images with --data"
            ) from exc
        why = f"the run's data is not readable here: {exc}"
        log.warning("threshold 0.5: %s", why)
        return labelled_split(data, predictor, split), None, why
    if data is None:
        cfg = predictor.config["data"]
        source = cfg.get("test_source") or cfg.get("source")
        return own_split(dm, split or "test", source), dm, ""
    return labelled_split(data, predictor, split), dm, ""


def evaluate(
    run_or_ckpt: str | Path,
    data: str | Path | None = None,
    split: str | None = None,
    out: str | Path | None = None,
    *,
    batch_size: int = 256,
    tta: bool | None = None,
    criterion: str = "accuracy",
    n_resamples: int = 1000,
    seed: int = 0,
    figures: bool = True,
    report: bool = True,
    progress: bool = False,
) -> EvalResult:
    """Score a checkpoint on labelled images (default: its run's test split) and write results."""
    predictor = Predictor.from_checkpoint(run_or_ckpt)
    tta = predictor.resolve_tta(tta)  # None: as the run validated and tested
    run_dir = run_dir_of(predictor.checkpoint)
    images, dm, why_no_data = eval_images(predictor, data, split)
    threshold, threshold_source = frozen_threshold(
        predictor, dm, why_no_data, criterion, batch_size, tta
    )
    probs = probabilities(predictor, images.split.images, batch_size, tta, progress, "evaluating")
    labels = images.split.labels.numpy()
    metrics = classification_metrics(probs, labels, predictor.classes, threshold)
    positive = positive_class(predictor.classes) if threshold is not None else 1
    predicted = decide(probs, threshold, positive)
    if n_resamples < 0:
        raise ValueError(f"n_resamples={n_resamples}: give 0 (no interval) or more resamples")
    metrics["ci"] = None  # n_resamples=0: no confidence interval
    if n_resamples:
        ci = bootstrap_ci(labels, predicted, len(predictor.classes), n_resamples, seed, CI_LEVEL)
        metrics["ci"] = {**ci, "level": CI_LEVEL, "resamples": n_resamples, "seed": seed}

    out_dir = (
        Path(out) if out is not None else default_out_dir(predictor.checkpoint, data, images.name)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(predictor.checkpoint.resolve()),
        "run": run_dir.name if run_dir is not None else None,
        "data": images.where,
        "data_source": None if data is None else str(data),
        "split": images.name,
        "data_fingerprint": images.fingerprint,
        "images": len(labels),
        "skipped_files": images.skipped,
        "tta": tta,
        "threshold": threshold,
        "threshold_source": threshold_source,
        "threshold_criterion": criterion if threshold is not None else None,
        "metrics": metrics,
    }
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(to_jsonable(record), indent=2) + "\n")
    result = EvalResult(out_dir, metrics, record, run_dir=run_dir)
    if figures:
        result.figures = write_figures(out_dir, images, probs, metrics, run_dir)
    if report and run_dir is not None:
        from realfake.evaluate.report import write_report

        result.report = write_report(run_dir)
    return result


def write_figures(
    out_dir: Path,
    images: EvalImages,
    probs: np.ndarray,
    metrics: dict[str, Any],
    run_dir: Path | None,
) -> dict[str, Path]:
    """Every evaluation figure as a PNG under ``out_dir/figures`` (learning curves: the run's)."""
    classes = metrics["classes"]
    labels = images.split.labels.numpy()
    threshold = metrics["threshold"]
    positive = positive_class(classes) if len(classes) == 2 else None
    where = out_dir / "figures"
    written = {
        "confusion_matrix": F.plot_confusion(
            metrics["confusion_matrix"], classes, where / "confusion_matrix.png"
        ),
        "roc": F.plot_roc(probs, labels, classes, positive, where / "roc.png"),
        "precision_recall": F.plot_pr(probs, labels, classes, positive, where / "pr.png"),
        "reliability": F.plot_reliability(
            probs, labels, metrics["ece"], where / "reliability.png", metrics["ece_bins"]
        ),
        "mistakes": F.plot_mistakes(
            images.split.images,
            probs,
            labels,
            classes,
            images.split.names,
            where / "mistakes.png",
            threshold,
            1 if positive is None else positive,
        ),
    }
    if run_dir is not None and (run_dir / "metrics.csv").is_file():
        history = pd.read_csv(run_dir / "metrics.csv")
        if len(history):
            written["learning_curves"] = F.plot_learning_curves(
                history, run_dir / "figures" / "learning_curves.png", run_dir.name
            )
    return written
