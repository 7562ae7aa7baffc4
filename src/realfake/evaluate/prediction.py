"""``predict(checkpoint, source) -> DataFrame``: one row per image file, unreadable ones included.

Labels are the arg-max by default (threshold 0.5 for two classes), which is what
``evaluate``'s ``accuracy_argmax`` scores; pass the frozen validation threshold from the run's
metrics.json (``saved_threshold``) to get exactly the labels behind ``evaluate``'s ``accuracy``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from realfake.data.layout import UNLABELLED
from realfake.data.loader import SkippedImagesWarning, load_images
from realfake.errors import CheckpointError, ConfigError
from realfake.evaluate.inference import probabilities
from realfake.evaluate.metrics import decide, positive_class
from realfake.evaluate.sources import run_dir_of
from realfake.inference import Predictor
from realfake.train.checkpoint import resolve_checkpoint


def saved_threshold(run_or_ckpt: str | Path) -> float:
    """The decision threshold ``realfake evaluate`` froze for this checkpoint (its metrics.json)."""
    checkpoint = resolve_checkpoint(run_or_ckpt).resolve()
    run = run_dir_of(checkpoint)
    path = run / "metrics.json" if run is not None else None
    if path is None or not path.is_file():
        raise CheckpointError(
            f"no metrics.json with a frozen threshold for {checkpoint}; run "
            f"`realfake evaluate {run or checkpoint}` first or pass --threshold 0.NN"
        )
    record = json.loads(path.read_text())
    if Path(record["checkpoint"]).resolve() != checkpoint:
        raise CheckpointError(
            f"{path} was computed for {record['checkpoint']}, not {checkpoint}; evaluate this "
            "checkpoint first or pass --threshold 0.NN"
        )
    if record.get("threshold") is None:
        raise ConfigError(f"{path} holds no threshold: the model has more than two classes")
    return float(record["threshold"])


def predict(
    checkpoint: str | Path,
    source: str | Path,
    *,
    batch_size: int = 256,
    tta: bool | None = None,
    threshold: float | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """filename, label, label_index, prob_<class>..., error for every image file in ``source``.

    Files that cannot be decoded get a row with the reason in ``error`` and nothing else.
    """
    predictor = Predictor.from_checkpoint(checkpoint)
    tta = predictor.resolve_tta(tta)  # None: as the run validated and tested
    classes = predictor.classes
    if threshold is not None and len(classes) != 2:
        raise ConfigError(f"a threshold applies to two classes; this model has {len(classes)}")
    with warnings.catch_warnings():
        # Each unreadable file becomes an error row below, which says more than one warning.
        warnings.simplefilter("ignore", SkippedImagesWarning)
        data = load_images(source, predictor.image_size, predictor.resize, labelled=False)
    split = data.splits[UNLABELLED]
    probs = probabilities(predictor, split.images, batch_size, tta, progress)
    predicted = decide(probs, threshold, positive_class(classes))
    good = pd.DataFrame(
        {
            "filename": split.names,
            "label": [classes[i] for i in predicted.tolist()],
            "label_index": pd.array(predicted, dtype="Int64"),
            **{f"prob_{c}": probs[:, k] for k, c in enumerate(classes)},
            "error": "",
        }
    )
    bad = pd.DataFrame(
        {
            "filename": [name for name, _ in data.skipped],
            "label": "",
            "label_index": pd.array([pd.NA] * len(data.skipped), dtype="Int64"),
            **{f"prob_{c}": np.full(len(data.skipped), np.nan) for c in classes},
            "error": [reason for _, reason in data.skipped],
        }
    )
    frames = [f for f in (good, bad) if len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else good
    return table.sort_values("filename", kind="stable", ignore_index=True)


def write_predictions(table: pd.DataFrame, path: str | Path) -> Path:
    """The prediction table as CSV; empty cells where an error row has no label or probability."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6f")
    return path
