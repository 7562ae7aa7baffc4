"""Figures of a three-class evaluation (no training needed): every PNG is written, none empty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from realfake.data.loader import ImageSplit
from realfake.evaluate.evaluation import write_figures
from realfake.evaluate.figures import plot_learning_curves, plot_study_curves
from realfake.evaluate.metrics import classification_metrics
from realfake.inference.splits import EvalImages


def test_three_class_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    n, classes = 60, ["cat", "dog", "ship"]
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), n)
    probs[np.arange(n), labels] += 0.5
    probs /= probs.sum(1, keepdims=True)
    split = ImageSplit(
        images=torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8),
        labels=torch.from_numpy(labels),
        names=[f"{classes[k]}/{i}.png" for i, k in enumerate(labels)],
    )
    metrics = classification_metrics(probs, labels, classes)
    written = write_figures(
        tmp_path, EvalImages(split, "synthetic", "all", "", 0), probs, metrics, None, None
    )
    assert set(written) == {
        "confusion_matrix",
        "roc",
        "precision_recall",
        "reliability",
        "mistakes",
    }
    for path in written.values():
        assert path.parent == tmp_path / "figures" and path.stat().st_size > 5_000


def test_learning_curves_of_one_run_and_of_a_study(tmp_path):
    history = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "train_loss": [0.9, 0.6, 0.4],
            "val_loss": [0.8, 0.7, 0.65],
            "train_acc": [0.5, 0.7, 0.8],
            "val_acc": [0.55, 0.6, 0.62],
        }
    )
    one = plot_learning_curves(history, tmp_path / "lc.png")
    many = plot_study_curves({"a": [history, history * 1.0], "b": [history]}, tmp_path / "s.png")
    assert one.stat().st_size > 5_000 and many.stat().st_size > 5_000
