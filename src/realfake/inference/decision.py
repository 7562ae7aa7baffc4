"""The decision rule: a threshold on P(positive class) for binary models, else the arg-max."""

from __future__ import annotations

import numpy as np


def decide(probs: np.ndarray, threshold: float | None = None, positive: int = 1) -> np.ndarray:
    """Predicted class per row: P(positive) >= threshold when binary and given, else arg-max."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if probs.shape[1] == 2 and threshold is not None:
        return np.where(probs[:, positive] >= threshold, positive, 1 - positive)
    return probs.argmax(1)
