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

from realfake.robustness.perturbations import Perturbation, parse_grid
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
) -> list[RobustnessRow]:
    """A row of metrics for the clean images and for each perturbation of ``grid``."""
    rows = []
    for perturbation in [None, *grid]:
        probs = perturbed_probabilities(predict, images, perturbation, seed)
        metrics = score(probs, labels, classes, threshold)
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
    checkpoint: str | Path,
    data: str | Path | None = None,
    perturbations: Sequence[str] | str | None = None,
    *,
    split: str | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
) -> RobustnessReport:
    """Evaluate ``checkpoint`` on clean and perturbed test images (default: its run's test split).

    The threshold on P(positive) is chosen on the run's clean validation split and frozen
    (0.5 when the run has none).
    """
    from realfake.inference import Predictor
    from realfake.robustness.evaldata import load_eval_data

    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    grid = parse_grid(perturbations)
    ev = load_eval_data(predictor, data, split, batch_size)

    def predict(batch: torch.Tensor) -> np.ndarray:
        return predictor.predict_proba(batch, batch_size=batch_size).numpy()

    labels = ev.test.labels.numpy()
    rows = evaluate_grid(
        predict, ev.test.images, labels, predictor.classes, grid, ev.threshold, seed
    )
    return RobustnessReport(
        rows=rows,
        classes=list(predictor.classes),
        threshold=ev.threshold,
        threshold_from=ev.threshold_from,
        positive=predictor.classes[ev.positive] if ev.threshold is not None else None,
        checkpoint=str(predictor.checkpoint),
        data=ev.where,
        seed=seed,
    )


def write_csv(
    records: Sequence[dict[str, object]], path: str | Path, fields: Sequence[str] | None = None
) -> Path:
    """Write dict rows (keys ``fields``, default the first row's) to ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
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
