"""Freezing a binary decision threshold: chosen once on validation data, only when it can be.

Re-tuning the threshold on the test split would report an optimistic accuracy; choosing it on
validation and reusing it on every test set keeps the test numbers honest. A threshold chosen
on a small validation split is noise fitted to a few images (the embedded demo's 100 validation
images moved its threshold to 0.336 and cost 6 points on test), so freezing one is a deliberate
step that is refused unless each class has ``MIN_PER_CLASS`` validation images (runs/spec.py
says why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realfake.errors import DataError
from realfake.runs import FrozenThreshold
from realfake.runs.spec import MIN_PER_CLASS, THRESHOLD_CRITERIA


def recall_halfwidth(n: int) -> float:
    """Worst-case 95% half-width of a recall measured on ``n`` images (p = 0.5)."""
    return 1.96 * math.sqrt(0.25 / n) if n > 0 else math.inf


def choose_threshold(
    labels: np.ndarray, p_positive: np.ndarray, positive: int, criterion: str = "accuracy"
) -> float:
    """Threshold on P(positive) maximising accuracy or Youden's J; ties go to the one nearest 0.5.

    The cut lies halfway between two consecutive validation scores, so a test score equal to a
    validation score is not decided by floating-point luck.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(
            f"criterion={criterion!r} is unknown; expected one of {THRESHOLD_CRITERIA}"
        )
    from sklearn.metrics import roc_curve

    y = np.asarray(labels) == positive
    scores = np.asarray(p_positive, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5  # one class only: nothing separates, keep the neutral cut
    # roc_curve lists every distinct score as a threshold (predict positive when p >= t), from
    # +inf (nothing positive) down; each row gives the rates at that cut.
    fpr, tpr, thresholds = roc_curve(y, scores, drop_intermediate=False)
    if criterion == "accuracy":
        value = (tpr * n_pos + (1 - fpr) * n_neg) / (n_pos + n_neg)
    else:
        value = tpr - fpr
    lower = np.append(thresholds[1:], 0.0)
    cuts = (thresholds + lower) / 2
    value, cuts = value[1:], cuts[1:]  # drop +inf: "never positive" is not a detector
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0, atol=1e-12))
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])


@dataclass(frozen=True)
class FreezeOutcome:
    """A threshold frozen on validation, or why none was (the rule then stays as it was)."""

    frozen: FrozenThreshold | None
    why: str  # for people: what was chosen on what, or why nothing was
    val_accuracy_argmax: float  # validation accuracy of the arg-max, for comparison
    val_accuracy_frozen: float | None  # validation accuracy at the chosen threshold


def freeze_threshold(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    positive: int,
    *,
    tta: bool,
    checkpoint_sha256: str,
    criterion: str = "accuracy",
    min_per_class: int = MIN_PER_CLASS,
    where: str = "the run's validation split",
) -> FreezeOutcome:
    """Choose a threshold on validation probabilities when each class has enough images."""
    if criterion not in THRESHOLD_CRITERIA:
        raise DataError(f"criterion {criterion!r} is unknown; expected one of {THRESHOLD_CRITERIA}")
    labels = np.asarray(labels)
    counts = {c: int((labels == k).sum()) for k, c in enumerate(classes)}
    argmax_acc = float(np.mean(probs.argmax(1) == labels)) if len(labels) else math.nan
    fewest = min(counts.values()) if counts else 0
    shown = ", ".join(f"{n} {c}" for c, n in counts.items())
    if fewest < min_per_class:
        why = (
            f"{where} has {shown}; freezing a threshold needs at least {min_per_class} images "
            f"of each class (each class's recall then known within "
            f"±{100 * recall_halfwidth(min_per_class):.1f} points), so the arg-max stays"
        )
        return FreezeOutcome(None, why, argmax_acc, None)
    value = choose_threshold(labels, probs[:, positive], positive, criterion)
    name = "accuracy" if criterion == "accuracy" else "Youden's J"
    source = f"chosen on {where} ({shown}; max {name})"
    frozen = FrozenThreshold(value, tta, criterion, source, checkpoint_sha256)
    decided = np.where(probs[:, positive] >= value, positive, 1 - positive)
    return FreezeOutcome(frozen, source, argmax_acc, float(np.mean(decided == labels)))
