"""The binary decision threshold, chosen once on validation data and then frozen.

Re-tuning the threshold on the test split would report an optimistic accuracy; choosing it on
validation and reusing it on every test set keeps the test numbers honest.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

CRITERIA = ("accuracy", "youden")


def choose_threshold(
    labels: np.ndarray, p_positive: np.ndarray, positive: int, criterion: str = "accuracy"
) -> float:
    """Threshold on P(positive) maximising accuracy or Youden's J; ties go to the one nearest 0.5.

    The cut lies halfway between two consecutive validation scores, so a test score equal to a
    validation score is not decided by floating-point luck.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is unknown; expected one of {CRITERIA}")
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
