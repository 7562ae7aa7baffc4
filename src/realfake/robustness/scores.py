"""The four figures of a robustness table, from the evaluation package's metrics.

A detector's threshold is chosen once on clean validation data and kept: re-tuning it on each
perturbed set would hide exactly the calibration shift a robustness test should expose.
"""

from __future__ import annotations

import math

import numpy as np

from realfake.evaluate.metrics import classification_metrics

METRICS = ("accuracy", "f1", "roc_auc", "ap")


def score(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    threshold: float | None = None,
    positive: int | None = None,
) -> dict[str, float]:
    """accuracy, f1, roc_auc and ap of N×C ``probs``; binary decides by ``threshold``.

    Binary: F1 and AP of the ``positive`` class (FAKE for CIFAKE). Multi-class: arg-max accuracy,
    macro F1, one-vs-rest macro ROC-AUC and AP. NaN where the labels cannot define a figure.
    """
    if len(labels) == 0:  # e.g. every test image leaked from training
        return dict.fromkeys(METRICS, math.nan)
    m = classification_metrics(probs, labels, classes, threshold, positive)
    binary = len(classes) == 2
    f1 = m["per_class"][m["positive_class"]]["f1"] if binary else m["f1_macro"]
    return {
        "accuracy": m["accuracy"],
        "f1": float(f1),
        "roc_auc": m["roc_auc"],
        "ap": m["average_precision"],
    }
