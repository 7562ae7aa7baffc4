"""``evaluate(model) -> EvalResult``: metrics.json, per-image predictions, figures, the report.

Decisions are the scorer's rule: the run's frozen threshold when one belongs to these weights,
else the arg-max. ``freeze=CRITERION`` is the deliberate step that chooses a threshold on the
run's validation split and freezes it into model.json, only when that split can support it
(``realfake.runs.spec.MIN_PER_CLASS`` images of each class); otherwise the rule stays
and the result says why. The evaluation is also logged to the run's MLflow entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from realfake.atomic import check_writable_dir, write_text
from realfake.data.loader import ImageSplit
from realfake.errors import ConfigError, DataError
from realfake.evaluate import figures as F
from realfake.evaluate.bootstrap import bootstrap_ci
from realfake.evaluate.metrics import classification_metrics, per_source_metrics
from realfake.evaluate.tracking import log_evaluation
from realfake.inference import DecisionRule, Predictor, Scorer, as_scorer
from realfake.inference.splits import EvalImages, eval_images, run_splits
from realfake.inference.threshold import FreezeOutcome, freeze_threshold
from realfake.inference.verdict import (
    OOD_FILE,
    OOD_FIT_IMAGES,
    UNSURE,
    FeatureDistance,
    SizeRange,
    choose_band,
    fit_feature_distance,
)
from realfake.runs import RunDir, write_json
from realfake.runs.rundir import write_run_spec
from realfake.runs.spec import MIN_PER_CLASS, THRESHOLD_CRITERIA

CI_LEVEL = 0.95
PREDICTIONS = "predictions.csv"  # per image, beside metrics.json: what compare pairs runs on


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
    scorer: Scorer | None = None  # the scorer that decided, with the rule frozen if it was
    freeze: FreezeOutcome | None = None  # what freezing did, when it was asked for


def evaluate(
    model: Scorer | str | Path,
    data: str | Path | None = None,
    split: str | None = None,
    out: str | Path | None = None,
    *,
    freeze: str | None = None,
    min_per_class: int = MIN_PER_CLASS,
    n_resamples: int = 1000,
    seed: int = 0,
    figures: bool = True,
    report: bool = True,
    track: bool = True,
    progress: bool = False,
) -> EvalResult:
    """Score a model on labelled images (default: its run's test split) and write results."""
    if n_resamples < 0:
        raise ConfigError(f"n_resamples={n_resamples}: give 0 (no interval) or more resamples")
    if freeze is not None and freeze not in THRESHOLD_CRITERIA:
        raise ConfigError(
            f"freeze criterion {freeze!r} is unknown; expected one of {THRESHOLD_CRITERIA}"
        )
    # Freezing replaces any earlier threshold, so the scorer starts from the arg-max then.
    if isinstance(model, Scorer) or freeze is None:
        scorer = as_scorer(model)
    else:
        scorer = Scorer.open(model, threshold="argmax")
    run = scorer.run
    if out is not None:  # checked before any inference: a bad --out fails at once
        check_writable_dir(out, "--out")
    elif run is not None:
        check_writable_dir(run.path, "run directory")
    outcome = None
    if freeze is not None:
        scorer, outcome = freeze_on_validation(scorer, freeze, min_per_class)
    images = eval_images(scorer.predictor, data, split)
    scored = scorer.score(images.split.images, sizes=images.split.sizes, progress=progress)
    probs = scored.probs
    labels = images.split.labels.numpy()
    classes = scorer.classes
    threshold = scorer.rule.threshold
    metrics = classification_metrics(probs, labels, classes, threshold, scorer.positive)
    predicted = scorer.decide(probs)
    metrics["per_source"] = per_source_metrics(
        probs, labels, predicted, images.split.sources, classes, scorer.positive
    )
    metrics["ci"] = None  # n_resamples=0: no confidence interval
    if n_resamples:
        ci = bootstrap_ci(labels, predicted, len(classes), n_resamples, seed, CI_LEVEL)
        metrics["ci"] = {**ci, "level": CI_LEVEL, "resamples": n_resamples, "seed": seed}
    said = scorer.verdicts(probs, scored.distances, scored.sizes)
    metrics["verdicts"] = verdict_metrics(said, predicted, labels)

    checkpoint = scorer.checkpoint
    assert checkpoint is not None
    if out is not None:
        out_dir = Path(out)
    elif run is not None:
        out_dir = run.evaluation_dir(data, images.name)
    else:
        out_dir = checkpoint.parent / f"{checkpoint.stem}-eval"
        if data is not None or images.name != "test":
            out_dir = RunDir(out_dir).evaluation_dir(data, images.name)
    record = {
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": scorer.sha256,
        "run": run.name if run is not None else None,
        "data": images.where,
        "data_source": None if data is None else str(data),
        "split": images.name,
        "data_fingerprint": images.fingerprint,
        "images": len(labels),
        "images_identity": images.identity(),  # which images, in order: pairs evaluations
        "skipped_files": images.skipped,
        "tta": scorer.tta,
        "threshold": threshold,
        "decision": scorer.rule_record(),
        "freeze": None if outcome is None else freeze_record(outcome, freeze),
        "unsure": unsure_record(scorer),
        "metrics": metrics,
    }
    write_predictions(out_dir / PREDICTIONS, images, probs, predicted, classes, said)
    write_json(out_dir / "metrics.json", record)
    result = EvalResult(
        out_dir,
        metrics,
        record,
        run_dir=run.path if run else None,
        correct=predicted == labels,
        images_identity=record["images_identity"],
        scorer=scorer,
        freeze=outcome,
    )
    if figures:
        result.figures = write_figures(out_dir, images, probs, metrics, run, scorer.positive)
        chosen = metrics["verdicts"]
        result.figures["risk_coverage"] = F.plot_risk_coverage(
            probs,
            labels,
            threshold,
            1 if scorer.positive is None else scorer.positive,
            out_dir / "figures" / "risk_coverage.png",
            (chosen["coverage"], 1 - chosen["selective_accuracy"]) if chosen["answered"] else None,
        )
        result.figures["per_source"] = F.plot_per_source(
            metrics["per_source"], out_dir / "figures" / "per_source.png"
        )
    if report and run is not None:
        from realfake.evaluate.report import write_report

        result.report = write_report(run.path)
    if track and run is not None:
        log_evaluation(run, out_dir, record, [*result.figures.values(), result.report])
    return result


def freeze_on_validation(
    scorer: Scorer, criterion: str, min_per_class: int
) -> tuple[Scorer, FreezeOutcome]:
    """Choose a threshold on the run's validation split and freeze it into model.json, if the
    split supports it; the scorer then decides with it. Otherwise the scorer is unchanged."""
    run, positive = scorer.run, scorer.positive
    if positive is None:
        raise ConfigError(f"a threshold applies to two classes; this model has {scorer.classes}")
    if run is None or not _is_runs_own(scorer, run):
        raise ConfigError(
            f"{scorer.checkpoint}: a threshold is frozen for the checkpoint a run predicts with "
            "(its best, else last); evaluate the run directory itself to freeze one"
        )
    splits = run_splits(scorer.predictor)
    val = splits.val
    if val is None or len(val) == 0:
        raise DataError(
            f"{run.path}: the run's data has no validation split to choose a threshold on"
        )
    probs = scorer.probabilities(val.images)
    outcome = freeze_threshold(
        val.labels.numpy(),
        probs,
        scorer.classes,
        positive,
        tta=scorer.tta,
        checkpoint_sha256=scorer.sha256,
        criterion=criterion,
        min_per_class=min_per_class,
    )
    if outcome.frozen is None:  # refused: the run keeps the rule it had
        return Scorer.build(scorer.predictor, tta=scorer.tta, batch_size=scorer.batch_size), outcome
    frozen = outcome.frozen
    band = choose_band(val.labels.numpy(), probs[:, positive], positive, frozen.value)
    train = splits.train
    if train is not None and train.sizes is not None and len(train):
        sizes = SizeRange.of(train.sizes)
        frozen = replace(
            frozen,
            train_side_lo=sizes.side_lo,
            train_side_hi=sizes.side_hi,
            train_aspect_hi=sizes.aspect_hi,
        )
    if band is not None:
        frozen = replace(
            frozen,
            unsure_margin=band.margin,
            target_error=band.target_error,
            val_coverage=band.coverage,
            val_selective_accuracy=band.selective_accuracy,
        )
    write_run_spec(run, scorer.spec.with_threshold(frozen))
    rule = DecisionRule(frozen.value, positive, "frozen", f"frozen: {frozen.source}", frozen)
    scorer = scorer.with_rule(rule)
    if isinstance(scorer.predictor, Predictor) and splits.train is not None and len(splits.train):
        ood = fit_ood(scorer, splits.train, val)
        ood.save(run.path / OOD_FILE)
        scorer = scorer.with_ood(ood)
    return scorer, replace(outcome, frozen=frozen)


def fit_ood(scorer: Scorer, train: ImageSplit, val: ImageSplit) -> FeatureDistance:
    """The feature-distance reference: per layer, class means and covariance of (at most
    OOD_FIT_IMAGES) training images' features; scales and cut-off from the validation images'."""
    pick = np.arange(len(train))
    if len(pick) > OOD_FIT_IMAGES:  # a fixed subset: the same reference on every machine
        pick = np.sort(np.random.default_rng(0).choice(len(pick), OOD_FIT_IMAGES, replace=False))
    features = scorer.features(train.images[torch.from_numpy(pick)])
    stages = sum(layer.startswith("stage") for layer in features)
    return fit_feature_distance(
        features,
        train.labels.numpy()[pick],
        scorer.features(val.images, tuple(features)),
        scorer.sha256,
        f"{len(pick)} training images of the run, at {stages} stages and the penultimate "
        f"features, the most unusual layer deciding (cut-off: {len(val)} validation images)",
    )


def verdict_metrics(
    said: list[tuple[str, str]], predicted: np.ndarray, labels: np.ndarray
) -> dict[str, Any]:
    """Coverage (share answered), the accuracy of the answers, and why the rest were not."""
    unsure = np.array([verdict == UNSURE for verdict, _ in said], bool)
    answered = ~unsure
    unlike = sum(1 for v, r in said if v == UNSURE and r.startswith("unlike"))
    n = len(labels)
    return {
        "answered": int(answered.sum()),
        "unsure": int(unsure.sum()),
        "unsure_unlike_training": unlike,
        "unsure_in_band": int(unsure.sum()) - unlike,
        "coverage": float(answered.mean()) if n else float("nan"),
        "selective_accuracy": float((predicted[answered] == labels[answered]).mean())
        if answered.any()
        else float("nan"),
    }


def unsure_record(scorer: Scorer) -> dict[str, Any]:
    """What can make this scorer say UNSURE: the frozen band and the feature distance."""
    frozen = scorer.rule.frozen
    band = None
    if frozen is not None and frozen.unsure_margin is not None:
        band = {
            "margin": frozen.unsure_margin,
            "target_error": frozen.target_error,
            "val_coverage": frozen.val_coverage,
            "val_selective_accuracy": frozen.val_selective_accuracy,
        }
    ood = scorer.ood
    return {
        "band": band,
        "feature_distance": None
        if ood is None
        else {"cutoff": ood.cutoff, "quantile": ood.quantile, "fitted_on": ood.fitted_on},
        "feature_distance_missing": scorer.ood_why or None,
        "training_sizes": None if scorer.size_range is None else scorer.size_range.describe(),
    }


def freeze_record(outcome: FreezeOutcome, criterion: str | None) -> dict[str, Any]:
    return {
        "criterion": criterion,
        "frozen": outcome.frozen is not None,
        "why": outcome.why,
        "val_accuracy_argmax": outcome.val_accuracy_argmax,
        "val_accuracy_frozen": outcome.val_accuracy_frozen,
    }


def _is_runs_own(scorer: Scorer, run: RunDir) -> bool:
    """Whether the scorer holds the checkpoint a run predicts with (best, else last)."""
    assert scorer.checkpoint is not None
    return run.inference_checkpoint().resolve() == scorer.checkpoint.resolve()


def write_predictions(
    path: Path,
    images: EvalImages,
    probs: np.ndarray,
    predicted: np.ndarray,
    classes: list[str],
    said: list[tuple[str, str]],
) -> Path:
    """Per image: name, true and predicted class, probabilities, verdict and reason (compare
    pairs runs on the predicted column)."""
    labels = images.split.labels.numpy()
    table = pd.DataFrame(
        {
            "filename": images.split.names,
            "label": [classes[k] for k in labels.tolist()],
            "predicted": [classes[k] for k in predicted.tolist()],
            **{f"prob_{c}": probs[:, k] for k, c in enumerate(classes)},
            "verdict": [verdict for verdict, _ in said],
            "reason": [reason for _, reason in said],
        }
    )
    write_text(path, table.to_csv(index=False, float_format="%.6f"))
    return path


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
