"""``evaluate(run_or_ckpt) -> EvalResult``: metrics.json, figures and the run's report.

For a run's own checkpoint, the threshold chosen on its validation split is also frozen into
the run's model.json, where ``predict --threshold frozen`` and the service find it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from realfake.atomic import check_writable_dir
from realfake.errors import ConfigError
from realfake.evaluate import figures as F
from realfake.evaluate.bootstrap import bootstrap_ci
from realfake.evaluate.metrics import classification_metrics
from realfake.evaluate.sources import EvalImages, eval_images, validation_decision
from realfake.evaluate.threshold import CRITERIA
from realfake.inference import Predictor
from realfake.runs import RunDir, write_json
from realfake.runs.rundir import write_run_spec

CI_LEVEL = 0.95


@dataclass
class EvalResult:
    out_dir: Path
    metrics: dict[str, Any]  # classification_metrics(...) plus "ci"
    record: dict[str, Any]  # everything metrics.json holds: provenance and metrics
    figures: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    run_dir: Path | None = None
    # Per image, in the split's order: whether its decision was right (what accuracy averages),
    # and EvalImages.identity() of the images, so that callers can pair evaluations.
    correct: np.ndarray | None = None
    images_identity: str = ""


def evaluate(
    run_or_ckpt: str | Path | Predictor,
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
    if n_resamples < 0:
        raise ConfigError(f"n_resamples={n_resamples}: give 0 (no interval) or more resamples")
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion={criterion!r} is unknown; expected one of {CRITERIA}")
    predictor = run_or_ckpt if isinstance(run_or_ckpt, Predictor) else Predictor.load(run_or_ckpt)
    tta = predictor.resolve_tta(tta)  # None: as the run validated and tested
    run = predictor.run
    if out is not None:  # checked before any inference: a bad --out fails at once
        check_writable_dir(out, "--out")
    elif run is not None:
        check_writable_dir(run.path, "run directory")
    images, splits, why_no_data = eval_images(predictor, data, split)
    decision = validation_decision(
        predictor, splits, why_no_data, tta=tta, criterion=criterion, batch_size=batch_size
    )
    probs = predictor.probabilities(
        images.split.images, tta=tta, batch_size=batch_size, progress=progress
    )
    labels = images.split.labels.numpy()
    classes = predictor.classes
    metrics = classification_metrics(probs, labels, classes, decision.threshold, predictor.positive)
    predicted = predictor.decide(probs, decision.threshold)
    metrics["ci"] = None  # n_resamples=0: no confidence interval
    if n_resamples:
        ci = bootstrap_ci(labels, predicted, len(classes), n_resamples, seed, CI_LEVEL)
        metrics["ci"] = {**ci, "level": CI_LEVEL, "resamples": n_resamples, "seed": seed}

    assert predictor.checkpoint is not None
    if out is not None:
        out_dir = Path(out)
    elif run is not None:
        out_dir = run.evaluation_dir(data, images.name)
    else:
        out_dir = predictor.checkpoint.parent / f"{predictor.checkpoint.stem}-eval"
        if data is not None or images.name != "test":
            out_dir = RunDir(out_dir).evaluation_dir(data, images.name)
    record = {
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(predictor.checkpoint.resolve()),
        "checkpoint_sha256": predictor.sha256,
        "run": run.name if run is not None else None,
        "data": images.where,
        "data_source": None if data is None else str(data),
        "split": images.name,
        "data_fingerprint": images.fingerprint,
        "images": len(labels),
        "skipped_files": images.skipped,
        "tta": tta,
        "threshold": decision.threshold,
        "threshold_source": decision.source,
        "threshold_criterion": criterion if decision.threshold is not None else None,
        "metrics": metrics,
    }
    write_json(out_dir / "metrics.json", record)
    if run is not None and decision.frozen is not None and _is_runs_own(predictor, run):
        write_run_spec(run, predictor.spec.with_threshold(decision.frozen))
        predictor.spec = predictor.spec.with_threshold(decision.frozen)
    result = EvalResult(
        out_dir,
        metrics,
        record,
        run_dir=run.path if run else None,
        correct=predicted == labels,
        images_identity=images.identity(),
    )
    if figures:
        result.figures = write_figures(out_dir, images, probs, metrics, run, predictor.positive)
    if report and run is not None:
        from realfake.evaluate.report import write_report

        result.report = write_report(run.path)
    return result


def _is_runs_own(predictor: Predictor, run: RunDir) -> bool:
    """Whether the predictor holds the checkpoint a run predicts with (best, else last)."""
    assert predictor.checkpoint is not None
    return run.inference_checkpoint().resolve() == predictor.checkpoint.resolve()


def write_figures(
    out_dir: Path,
    images: EvalImages,
    probs: np.ndarray,
    metrics: dict[str, Any],
    run: RunDir | None,
    positive: int | None,
) -> dict[str, Path]:
    """Every evaluation figure as a PNG under ``out_dir/figures`` (learning curves: the run's)."""
    classes = metrics["classes"]
    labels = images.split.labels.numpy()
    threshold = metrics["threshold"]
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
    if run is not None and run.metrics_csv.is_file():
        history = pd.read_csv(run.metrics_csv)
        if len(history):
            written["learning_curves"] = F.plot_learning_curves(
                history, run.figures / "learning_curves.png", run.name
            )
    return written
