"""Metric values on hand-made predictions equal scikit-learn's; threshold and bootstrap behave."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from realfake.evaluate.bootstrap import bootstrap_ci
from realfake.evaluate.metrics import classification_metrics
from realfake.inference.threshold import choose_threshold
from realfake.runs import default_positive_class


def _predictions(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that lean towards the true class, so every metric is informative."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


@pytest.mark.parametrize("classes", [["cat", "dog", "ship"], ["FAKE", "REAL"], ["no", "yes"]])
def test_metrics_equal_scikit_learn(classes):
    probs, labels = _predictions(300, len(classes), seed=len(classes))
    # The positive class comes from the model spec: FAKE for a detector, else the second class.
    positive = default_positive_class(classes)
    index = classes.index(positive) if positive else None
    m = classification_metrics(probs, labels, classes, positive=index)  # arg-max decisions
    predicted = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    p, r, f, s = skm.precision_recall_fscore_support(labels, predicted)
    for k, name in enumerate(classes):
        got = m["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            (p[k], r[k], f[k], s[k])
        )
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(labels, predicted, average=average)
        assert m[f"precision_{average}"] == pytest.approx(p)
        assert m[f"recall_{average}"] == pytest.approx(r)
        assert m[f"f1_{average}"] == pytest.approx(f)
    assert m["log_loss"] == pytest.approx(skm.log_loss(labels, probs))
    assert m["confusion_matrix"] == skm.confusion_matrix(labels, predicted).tolist()
    if len(classes) == 2:
        y = labels == index
        assert m["positive_class"] == positive
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, index]))
        assert m["average_precision"] == pytest.approx(
            skm.average_precision_score(y, probs[:, index])
        )
    else:
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"))
        onehot = np.eye(len(classes))[labels]
        assert m["average_precision"] == pytest.approx(
            skm.average_precision_score(onehot, probs, average="macro")
        )


def test_binary_threshold_decides_on_the_positive_class():
    probs = np.array([[0.6, 0.4], [0.45, 0.55], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1])  # 0 = FAKE (positive), 1 = REAL
    at_half = classification_metrics(probs, labels, ["FAKE", "REAL"], 0.5, positive=0)
    lower = classification_metrics(probs, labels, ["FAKE", "REAL"], 0.4, positive=0)
    assert at_half["accuracy"] == 0.75  # the second image (P(FAKE) = 0.45) is called REAL
    assert lower["accuracy"] == 1.0
    assert lower["accuracy_argmax"] == 0.75  # the arg-max figure ignores the threshold
    assert lower["threshold"] == 0.4


def test_missing_class_gives_nan_ranking_metrics_not_an_error():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]])
    m = classification_metrics(probs, np.array([0, 0, 0]), ["FAKE", "REAL"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["average_precision"])


def test_ece_of_calibrated_and_overconfident_predictions():
    labels = np.array([0] * 8 + [1] * 2)
    calibrated = np.tile([0.8, 0.2], (10, 1))  # 80 % confident, 80 % right
    overconfident = np.tile([0.99, 0.01], (10, 1))
    assert classification_metrics(calibrated, labels, ["a", "b"])["ece"] == pytest.approx(
        0, abs=1e-6
    )
    assert classification_metrics(overconfident, labels, ["a", "b"])["ece"] == pytest.approx(0.19)


def test_threshold_maximises_validation_accuracy_and_is_a_midpoint():
    labels = np.array([1, 1, 1, 0, 0, 0])  # positive = 1
    scores = np.array([0.9, 0.35, 0.3, 0.2, 0.1, 0.05])
    t = choose_threshold(labels, scores, positive=1)
    assert t == pytest.approx(0.25)  # halfway between 0.3 (positive) and 0.2 (negative)
    assert choose_threshold(labels, scores, positive=1, criterion="youden") == pytest.approx(0.25)
    assert choose_threshold(np.ones(4, int), scores[:4], positive=1) == 0.5  # one class only


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic():
    probs, labels = _predictions(400, 3, seed=7)
    predicted = probs.argmax(1)
    m = classification_metrics(probs, labels, ["a", "b", "c"])
    ci = bootstrap_ci(labels, predicted, 3, n_resamples=500, seed=3)
    for key in ("accuracy", "f1_macro"):
        lo, hi = ci[key]
        assert lo < m[key] < hi
        assert hi - lo < 0.2  # 400 images: the interval is a few points wide, not vacuous
    assert bootstrap_ci(labels, predicted, 3, n_resamples=500, seed=3) == ci
    assert bootstrap_ci(labels, predicted, 3, n_resamples=500, seed=4) != ci
    with pytest.raises(ValueError, match="n_resamples=0"):
        bootstrap_ci(labels, predicted, 3, n_resamples=0)
