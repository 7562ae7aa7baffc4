"""An evaluation logged to its run's tracker entries (MLflow, and W&B offline when the run used
it), so the trackers and the report agree."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from realfake.runs import RunDir, read_json
from realfake.runs.tracking import MlflowTracker

# Scalar metrics worth a tracker column; the rest (per class, confusion) lives in metrics.json.
LOGGED = (
    "accuracy",
    "accuracy_argmax",
    "balanced_accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "roc_auc",
    "average_precision",
    "log_loss",
    "ece",
)


def metric_prefix(out_dir: Path, run: RunDir) -> str:
    """'eval/test' for the run's own test split, 'eval/<folder>' for other evaluations."""
    try:
        relative = out_dir.resolve().relative_to(run.path.resolve())
    except ValueError:
        return f"eval/{out_dir.name}"
    return "eval/test" if relative == Path(".") else f"eval/{relative.name}"


def log_evaluation(
    run: RunDir, out_dir: Path, record: dict[str, Any], files: Iterable[Path | None]
) -> str | None:
    """Metrics, threshold, split and data fingerprint, and the report and figures, logged to
    the MLflow run the training opened (none when it was not tracked); returns its id."""
    prefix = metric_prefix(out_dir, run)
    metrics = record["metrics"]
    values = {f"{prefix}/{k}": metrics[k] for k in LOGGED if metrics.get(k) is not None}
    if record.get("threshold") is not None:
        values[f"{prefix}/threshold"] = record["threshold"]
    values = {k: float(v) for k, v in values.items() if math.isfinite(float(v))}
    tags = {
        f"{prefix}/split": record["split"],
        f"{prefix}/data": record["data"],
        f"{prefix}/data_fingerprint": record["data_fingerprint"],
        f"{prefix}/decision": record["decision"]["text"],
        f"{prefix}/checkpoint_sha256": record["checkpoint_sha256"],
    }
    log_wandb_offline(run, values, tags)
    saved = read_json(run.tracking)
    run_id, uri = saved.get("mlflow_run_id"), saved.get("tracking_uri")
    if not run_id or not uri:
        return None
    tracker = MlflowTracker(uri, experiment="")
    if tracker.attach(run_id) is None:
        return None
    tracker.log_metrics(values)
    tracker.set_tags(tags)
    artifacts = [out_dir / "metrics.json", *(f for f in files if f is not None)]
    tracker.log_artifacts([Path(f) for f in artifacts], subdir=prefix)
    return run_id


def wandb_offline_id(run: RunDir) -> str | None:
    """The id of the W&B offline run training wrote under the run directory, if any."""
    folders = sorted((run.path / "wandb").glob("offline-run-*-*"))
    return folders[-1].name.rsplit("-", 1)[-1] if folders else None


def log_wandb_offline(run: RunDir, values: dict[str, float], tags: dict[str, str]) -> bool:
    """Add the evaluation to the run's W&B offline run (resumed by id; ``wandb sync`` uploads
    it later); a failure is a warning, never a lost evaluation."""
    run_id = wandb_offline_id(run)
    if run_id is None:
        return False
    try:
        import wandb

        settings = wandb.Settings(silent=True, console="off")
        entry = wandb.init(
            id=run_id,
            dir=str(run.path),
            mode="offline",
            resume="allow",
            reinit="create_new",  # a run of its own, whatever else this process has open
            settings=settings,
        )
        try:
            entry.log(values)
            entry.summary.update({**values, **tags})
        finally:
            entry.finish()
    except Exception as exc:  # a missing package or a broken folder must not lose the result
        warnings.warn(f"W&B offline logging skipped: {exc}", RuntimeWarning, stacklevel=2)
        return False
    return True
