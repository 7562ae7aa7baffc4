"""Classification metrics of predicted probabilities, computed by scikit-learn and torchmetrics.

Binary tasks decide with a threshold on P(positive) (the class the model spec names positive:
FAKE for a detector); multi-class tasks take the arg-max. Ranking metrics (ROC-AUC, AP) and
the calibration error do not depend on the threshold. Values that a set of labels cannot
define (ROC-AUC when a class is missing) are NaN rather than an exception: a folder of fakes
alone is a legitimate test set.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)
from torchmetrics.classification import MulticlassCalibrationError

from realfake.inference.rule import decide

# 15 equal-width bins, as in Guo et al. 2017 ("On Calibration of Modern Neural Networks").
ECE_BINS = 15


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE (L1, equal-width bins) from torchmetrics, for two classes or more."""
    metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=n_bins, norm="l1")
    return float(metric(torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(labels)))


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    with warnings.catch_warnings():
        # A class predicted but absent from the labels (a folder of fakes alone) is expected.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(labels, predicted))


def _ranking(labels: np.ndarray, probs: np.ndarray, positive: int | None) -> dict[str, Any]:
    """ROC-AUC and average precision: overall (binary or one-vs-rest macro) and per class."""
    n_classes = probs.shape[1]
    onehot = np.eye(n_classes, dtype=int)[labels]
    per_auc, per_ap = [], []
    for k in range(n_classes):
        both = 0 < onehot[:, k].sum() < len(labels)
        per_auc.append(float(roc_auc_score(onehot[:, k], probs[:, k])) if both else math.nan)
        per_ap.append(
            float(average_precision_score(onehot[:, k], probs[:, k])) if both else math.nan
        )
    if positive is not None:
        return {
            "roc_auc": per_auc[positive],
            "average_precision": per_ap[positive],
            "per_auc": per_auc,
            "per_ap": per_ap,
        }
    complete = len(np.unique(labels)) == n_classes
    return {
        "roc_auc": float(
            roc_auc_score(
                labels, probs, multi_class="ovr", average="macro", labels=range(n_classes)
            )
        )
        if complete
        else math.nan,
        "average_precision": float(average_precision_score(onehot, probs, average="macro"))
        if complete
        else math.nan,
        "per_auc": per_auc,
        "per_ap": per_ap,
    }


def classification_metrics(
    probs: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    classes: list[str],
    threshold: float | None = None,
    positive: int | None = None,
) -> dict[str, Any]:
    """Accuracy, P/R/F1 (per class, macro, weighted), ROC-AUC, AP, log loss, ECE, confusion.

    Binary: ``positive`` is the index of the positive class (the model spec's; default 1), and
    decisions are P(positive) >= ``threshold`` (arg-max when None). Multi-class: arg-max.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(classes)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(f"probs has shape {probs.shape}; expected N×{n_classes} for {classes}")
    if len(labels) != len(probs) or len(labels) == 0:
        raise ValueError(f"{len(labels)} labels for {len(probs)} predictions; expected N > 0 each")
    # float32 softmax rows sum to 1 within ~1e-7; sklearn's log loss wants them exact.
    probs = probs / probs.sum(1, keepdims=True)
    binary = n_classes == 2
    positive = (1 if positive is None else positive) if binary else None
    predicted = decide(probs, threshold if binary else None, 1 if positive is None else positive)
    index = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=index, zero_division=0
    )
    ranking = _ranking(labels, probs, positive)
    out: dict[str, Any] = {
        "task": "binary" if binary else "multiclass",
        "n": len(labels),
        "classes": list(classes),
        "positive_class": classes[positive] if positive is not None else None,
        "threshold": threshold if binary else None,
        "accuracy": float(accuracy_score(labels, predicted)),
        "accuracy_argmax": float(accuracy_score(labels, probs.argmax(1))),
        "balanced_accuracy": _balanced_accuracy(labels, predicted),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, predicted, labels=index, average=average, zero_division=0
        )
        out.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    out.update(
        {
            "roc_auc": ranking["roc_auc"],
            "average_precision": ranking["average_precision"],
            "log_loss": float(log_loss(labels, probs, labels=index)),
            "ece": expected_calibration_error(probs, labels),
            "ece_bins": ECE_BINS,
            "confusion_matrix": confusion_matrix(labels, predicted, labels=index).tolist(),
            "per_class": {
                name: {
                    "precision": float(precision[k]),
                    "recall": float(recall[k]),
                    "f1": float(f1[k]),
                    "support": int(support[k]),
                    "roc_auc": ranking["per_auc"][k],
                    "average_precision": ranking["per_ap"][k],
                }
                for k, name in enumerate(classes)
            },
        }
    )
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in out.items()}


def per_source_metrics(
    probs: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    predicted: np.ndarray,
    sources: list[str] | None,
    classes: list[str],
    positive: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Per source, in order of appearance: images, accuracy and, for two classes, ROC-AUC,
    recall of the positive class and specificity (the negative class's recall).

    A source's ROC-AUC ranks its positive images (a generator's fakes) against every negative
    image of the evaluation (all the real photos): how well its fakes are told from real ones.
    A source of negatives alone ranks every positive image against its negatives. ``None``
    where a source lacks the images a figure needs; ``sources=None`` is one source, "all".
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    names = np.array(["all"] * len(labels) if sources is None else list(sources), dtype=object)
    if not len(names) == len(labels) == len(predicted) == len(probs):
        raise ValueError(
            f"{len(names)} sources, {len(labels)} labels, {len(predicted)} decisions and "
            f"{len(probs)} probabilities; expected one of each per image"
        )
    binary = len(classes) == 2
    pos = (1 if positive is None else positive) if binary else None
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(names.tolist()):
        mine = names == name
        row: dict[str, Any] = {
            "n": int(mine.sum()),
            "accuracy": float((predicted[mine] == labels[mine]).mean()),
            "positives": None,
            "negatives": None,
            "roc_auc": None,
            "recall": None,
            "specificity": None,
        }
        if pos is not None:
            is_pos = labels == pos
            own_pos, own_neg = mine & is_pos, mine & ~is_pos
            # Its fakes against all reals; a source of reals alone: all fakes against its reals.
            ranked_pos, ranked_neg = (own_pos, ~is_pos) if own_pos.any() else (is_pos, own_neg)
            row.update(
                positives=int(own_pos.sum()),
                negatives=int(own_neg.sum()),
                roc_auc=_auc(probs[ranked_pos, pos], probs[ranked_neg, pos]),
                recall=float((predicted[own_pos] == pos).mean()) if own_pos.any() else None,
                specificity=float((predicted[own_neg] != pos).mean()) if own_neg.any() else None,
            )
        out[str(name)] = row
    return out


def _auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float | None:
    """ROC-AUC of positive against negative scores; None when either side is empty."""
    if not len(positive_scores) or not len(negative_scores):
        return None
    truth = np.r_[np.ones(len(positive_scores)), np.zeros(len(negative_scores))]
    return float(roc_auc_score(truth, np.r_[positive_scores, negative_scores]))
