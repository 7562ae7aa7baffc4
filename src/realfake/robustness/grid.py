"""Metrics of a checkpoint under every perturbation of a grid, both classes perturbed alike.

A grid entry is a perturbation (``realfake.data.perturbations``: ``jpeg:50``, ``blur:1``, ...) or
a white-box L∞ attack on the checkpoint under test (``realfake.attacks``): ``fgsm:EPS`` (one step
of ε) and ``pgd:EPS`` (20 steps of α = 2.5·ε/20 from a random start), ε = EPS/255 of the pixel
range, against the scorer's own function (normalisation and flip TTA) and the true labels.
Attacked images are rounded back to uint8 before they are scored, as an attacked file would be.
Attacks are not in the default grid (PGD with flip TTA costs 40 forward and backward passes per
image, and the grid's mean is a figure of common corruptions); ``--perturbations fgsm,pgd`` adds
them at ε 1, 2, 4, 8.
"""

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
from realfake.attacks.linf import ATTACKS, Attack, known_attacks, parse_attacks
from realfake.attacks.whitebox import attack_images
from realfake.data.perturbations import (
    KINDS,
    Perturbation,
    known_kinds,
    parse_grid,
    split_spec,
    split_specs,
)
from realfake.errors import ConfigError
from realfake.inference import Scorer, as_scorer
from realfake.inference.splits import eval_images
from realfake.robustness.scores import METRICS, score

if TYPE_CHECKING:
    import pandas as pd

CHUNK = 2048  # images perturbed at once: bounded memory on 20,000-image test sets

Entry = Perturbation | Attack
# How a grid runs a white-box entry: (attack, uint8 images, their labels, seed) -> uint8 images.
Attacker = Callable[[Attack, torch.Tensor, torch.Tensor, int], torch.Tensor]


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
    threshold: float | None  # the scorer's rule: a frozen threshold (binary), else None
    decision: str  # the rule that decided, in words
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


def parse_entries(specs: Sequence[str] | str | None) -> list[Entry]:
    """Grid entries from ``"jpeg:50,blur,pgd:4"``-style specs; a bare kind means its default
    levels (an attack's: ε 1, 2, 4 and 8); None: the default grid (no attacks)."""
    if specs is None:
        return list(parse_grid(None))
    entries: list[Entry] = []
    for spec in split_specs(specs):
        kind, _ = split_spec(spec)
        if kind in ATTACKS:
            entries += parse_attacks(spec)
        elif kind in KINDS:
            entries += parse_grid([spec])
        else:
            raise ConfigError(
                f"perturbation '{spec}': unknown kind '{kind}'; expected KIND:LEVEL "
                f"such as jpeg:50 or pgd:4. Known kinds: {known_kinds()}. Attacks on the model "
                f"(EPS in 1/255): {known_attacks()}"
            )
    if not entries:
        raise ConfigError(f"no perturbations given; known kinds: {known_kinds()}")
    return list(dict.fromkeys(entries))  # drop repeats, keep order


def perturbed_probabilities(
    predict: Callable[[torch.Tensor], np.ndarray],
    images: torch.Tensor,
    perturbation: Entry | None,
    seed: int = 0,
    chunk: int = CHUNK,
    labels: np.ndarray | None = None,
    attacker: Attacker | None = None,
) -> np.ndarray:
    """``predict`` of every image after ``perturbation`` (None: clean), ``chunk`` at a time.

    Chunk k is perturbed with seed ``seed + k * chunk`` (noise and the attacks' random starts
    use it), so results do not depend on the order the grid is run in. An attack needs the
    images' ``labels`` and an ``attacker`` that runs it against the model.
    """
    if isinstance(perturbation, Attack) and (attacker is None or labels is None):
        raise ValueError(f"{perturbation.name} is an attack: it needs labels and an attacker")
    parts = []
    for start in range(0, images.shape[0], chunk):
        batch = images[start : start + chunk]
        if isinstance(perturbation, Attack):
            assert attacker is not None and labels is not None
            targets = torch.as_tensor(labels[start : start + chunk], dtype=torch.long)
            batch = attacker(perturbation, batch, targets, seed + start)
        elif perturbation is not None:
            batch = perturbation(batch, seed=seed + start)
        parts.append(predict(batch))
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def evaluate_grid(
    predict: Callable[[torch.Tensor], np.ndarray],
    images: torch.Tensor,
    labels: np.ndarray,
    classes: list[str],
    grid: Sequence[Entry],
    threshold: float | None = None,
    seed: int = 0,
    positive: int | None = None,
    chunk: int = CHUNK,
    attacker: Attacker | None = None,
) -> list[RobustnessRow]:
    """A row of metrics for the clean images and for each entry of ``grid``."""
    rows = []
    for perturbation in [None, *grid]:
        probs = perturbed_probabilities(
            predict, images, perturbation, seed, chunk, labels, attacker
        )
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
    model: Scorer | str | Path,
    data: str | Path | None = None,
    perturbations: Sequence[str] | str | None = None,
    *,
    split: str | None = None,
    seed: int = 0,
) -> RobustnessReport:
    """Evaluate ``model`` on clean and perturbed test images (default: its run's test split).

    The images, the scorer's probabilities and its decision rule are exactly those of
    ``realfake evaluate`` with the same scorer, so the clean row is evaluate's result.
    ``perturbations``: specs as ``parse_entries`` reads them; attacks (``pgd:4``) run white-box
    against the scorer's function and the test labels.
    """
    scorer = as_scorer(model)
    grid = parse_entries(perturbations)
    images = eval_images(scorer.predictor, data, split)

    def attacker(attack: Attack, batch: torch.Tensor, labels: torch.Tensor, seed: int):
        return attack_images(scorer, batch, labels, attack, seed=seed)

    labels = images.split.labels.numpy()
    rule = scorer.rule
    rows = evaluate_grid(
        scorer.probabilities,
        images.one_size("the robustness grid"),
        labels,
        scorer.classes,
        grid,
        rule.threshold,
        seed,
        scorer.positive,
        # Whole batches per chunk: the clean row then sees the very batches evaluate sees.
        chunk=max(1, CHUNK // scorer.batch_size) * scorer.batch_size,
        attacker=attacker,
    )
    positive = scorer.positive
    return RobustnessReport(
        rows=rows,
        classes=scorer.classes,
        threshold=rule.threshold,
        decision=scorer.describe_rule(),
        positive=scorer.classes[positive] if positive is not None else None,
        checkpoint=str(scorer.checkpoint),
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
