"""An evaluation logged to its run's tracker entry, so the tracker and the report agree."""

from __future__ import annotations

import math
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
    saved = read_json(run.tracking)
    run_id, uri = saved.get("mlflow_run_id"), saved.get("tracking_uri")
    if not run_id or not uri:
        return None
    tracker = MlflowTracker(uri, experiment="")
    if tracker.attach(run_id) is None:
        return None
    prefix = metric_prefix(out_dir, run)
    metrics = record["metrics"]
    values = {f"{prefix}/{k}": metrics[k] for k in LOGGED if metrics.get(k) is not None}
    if record.get("threshold") is not None:
        values[f"{prefix}/threshold"] = record["threshold"]
    tracker.log_metrics({k: float(v) for k, v in values.items() if math.isfinite(float(v))})
    tracker.set_tags(
        {
            f"{prefix}/split": record["split"],
            f"{prefix}/data": record["data"],
            f"{prefix}/data_fingerprint": record["data_fingerprint"],
            f"{prefix}/decision": record["decision"]["text"],
            f"{prefix}/checkpoint_sha256": record["checkpoint_sha256"],
        }
    )
    artifacts = [out_dir / "metrics.json", *(f for f in files if f is not None)]
    tracker.log_artifacts([Path(f) for f in artifacts], subdir=prefix)
    return run_id
