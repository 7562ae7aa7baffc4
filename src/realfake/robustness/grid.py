"""Metrics of a checkpoint under every perturbation of a grid, both classes perturbed alike."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from realfake.atomic import replacing
from realfake.data.perturbations import Perturbation, parse_grid
from realfake.evaluate.sources import eval_images, validation_decision
from realfake.inference import Predictor
from realfake.robustness.scores import METRICS, score

if TYPE_CHECKING:
    import pandas as pd

CHUNK = 2048  # images perturbed at once: bounded memory on 20,000-image test sets


@dataclass
class RobustnessRow:
    perturbation: str  # "clean", "jpeg:50", ...
    kind: str
    level: float | None
    accuracy: float
    f1: float
    roc_auc: float
    ap: float
    n: int


@dataclass
class RobustnessReport:
    rows: list[RobustnessRow]  # clean first, then the grid in order
    classes: list[str]
    threshold: float | None  # frozen on clean validation data (binary only)
    threshold_from: str
    positive: str | None  # the class scored as positive by F1 and AP
    checkpoint: str = ""
    data: str = ""
    seed: int = 0

    @property
    def clean(self) -> RobustnessRow:
        return self.rows[0]

    @property
    def perturbed(self) -> list[RobustnessRow]:
        return self.rows[1:]

    def mean(self) -> dict[str, float]:
        """Each metric averaged over the grid (clean excluded): the headline robustness figure."""
        return {m: _nanmean([getattr(r, m) for r in self.perturbed]) for m in METRICS}

    def records(self, with_mean: bool = True) -> list[dict[str, object]]:
        """One dict per row (clean, grid, and the grid mean), ready for CSV or a DataFrame."""
        out: list[dict[str, object]] = [asdict(r) for r in self.rows]
        if with_mean and self.perturbed:
            mean = self.mean()
            out.append({"perturbation": "mean", "kind": "mean", "level": None, **mean, "n": 0})
        return out

    def to_frame(self, with_mean: bool = True) -> pd.DataFrame:
        """The records as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.records(with_mean))


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def perturbed_probabilities(
    predict: Callable[[torch.Tensor], np.ndarray],
    images: torch.Tensor,
    perturbation: Perturbation | None,
    seed: int = 0,
    chunk: int = CHUNK,
) -> np.ndarray:
    """``predict`` of every image after ``perturbation`` (None: clean), ``chunk`` at a time.

    Chunk k is perturbed with seed ``seed + k * chunk`` (only noise uses it), so results do not
    depend on the order the grid is run in.
    """
    parts = []
    for start in range(0, images.shape[0], chunk):
        batch = images[start : start + chunk]
        if perturbation is not None:
            batch = perturbation(batch, seed=seed + start)
        parts.append(predict(batch))
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def evaluate_grid(
    predict: Callable[[torch.Tensor], np.ndarray],
    images: torch.Tensor,
    labels: np.ndarray,
    classes: list[str],
    grid: Sequence[Perturbation],
    threshold: float | None = None,
    seed: int = 0,
    positive: int | None = None,
    chunk: int = CHUNK,
) -> list[RobustnessRow]:
    """A row of metrics for the clean images and for each perturbation of ``grid``."""
    rows = []
    for perturbation in [None, *grid]:
        probs = perturbed_probabilities(predict, images, perturbation, seed, chunk)
        metrics = score(probs, labels, classes, threshold, positive)
        rows.append(
            RobustnessRow(
                perturbation="clean" if perturbation is None else perturbation.name,
                kind="clean" if perturbation is None else perturbation.kind,
                level=None if perturbation is None else perturbation.level,
                n=len(labels),
                **metrics,
            )
        )
    return rows


def robustness_report(
    checkpoint: str | Path | Predictor,
    data: str | Path | None = None,
    perturbations: Sequence[str] | str | None = None,
    *,
    split: str | None = None,
    seed: int = 0,
    batch_size: int = 256,
    tta: bool | None = None,
    device: str = "cpu",
) -> RobustnessReport:
    """Evaluate ``checkpoint`` on clean and perturbed test images (default: its run's test split).

    The images, the predictor's probabilities (the run's flip TTA unless ``tta`` says
    otherwise) and the threshold chosen on the run's clean validation split are exactly those
    of ``realfake evaluate``, so the clean row is evaluate's result (0.5 without validation).
    """
    predictor = (
        checkpoint if isinstance(checkpoint, Predictor) else Predictor.load(checkpoint, device)
    )
    grid = parse_grid(perturbations)
    images, splits, why = eval_images(predictor, data, split)
    decision = validation_decision(predictor, splits, why, tta=tta, batch_size=batch_size)

    def predict(batch: torch.Tensor) -> np.ndarray:
        return predictor.probabilities(batch, tta=tta, batch_size=batch_size)

    labels = images.split.labels.numpy()
    rows = evaluate_grid(
        predict,
        images.split.images,
        labels,
        predictor.classes,
        grid,
        decision.threshold,
        seed,
        predictor.positive,
        # Whole batches per chunk: the clean row then sees the very batches evaluate sees.
        chunk=max(1, CHUNK // batch_size) * batch_size,
    )
    positive = predictor.positive
    return RobustnessReport(
        rows=rows,
        classes=predictor.classes,
        threshold=decision.threshold,
        threshold_from=decision.source,
        positive=predictor.classes[positive] if positive is not None else None,
        checkpoint=str(predictor.checkpoint),
        data=images.where,
        seed=seed,
    )


def write_csv(
    records: Sequence[dict[str, object]], path: str | Path, fields: Sequence[str] | None = None
) -> Path:
    """Write dict rows (keys ``fields``, default the first row's) to ``path``; returns it."""
    path = Path(path)
    with replacing(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields or (records[0] if records else [])))
        writer.writeheader()
        writer.writerows(records)
    return path


def compare(
    reports: dict[str, RobustnessReport], metric: str = "accuracy"
) -> list[dict[str, object]]:
    """Side-by-side ``metric`` per perturbation (rows) and report (columns), with the grid mean."""
    values = {
        k: {r.perturbation: getattr(r, metric) for r in rep.rows} for k, rep in reports.items()
    }
    names = list(dict.fromkeys(name for table in values.values() for name in table))
    rows: list[dict[str, object]] = [
        {"perturbation": name, **{k: v.get(name, math.nan) for k, v in values.items()}}
        for name in names
    ]
    rows.append({"perturbation": "mean", **{k: r.mean()[metric] for k, r in reports.items()}})
    return rows
