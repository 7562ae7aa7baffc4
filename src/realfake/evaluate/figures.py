"""Evaluation figures as PNG files: learning curves, confusion matrix, ROC, PR, reliability, errors.

Figures are drawn on ``matplotlib.figure.Figure`` objects, never pyplot's global state, so they
need no display and leak no memory across many calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from realfake.atomic import replacing
from realfake.evaluate.metrics import ECE_BINS
from realfake.inference.rule import decide

DPI = 120
# 32 px images are unreadable at print size; enlarging by an integer factor with nearest
# neighbours (to at least 128 px) keeps every pixel sharp, so artefacts stay visible.
MISTAKE_PIXELS = 128


def _save(fig: Figure, path: Path) -> Path:
    with replacing(path) as tmp:  # never half a PNG in place of the previous one
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    return path


def plot_learning_curves(history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Train/val loss and accuracy per epoch from a run's metrics.csv."""
    fig = Figure(figsize=(9, 3.4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    epoch = history["epoch"] + 1
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        for split, style in (("train", "--"), ("val", "-")):
            column = f"{split}_{metric}"
            if column in history and history[column].notna().any():
                ax.plot(epoch, history[column], style, marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "learning curves")
    return _save(fig, path)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    """Counts (and row-normalised share) of true class against predicted class."""
    cm = np.asarray(matrix)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 2.2 + 0.6 * len(classes)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        colour = "white" if share[i, j] > 0.6 else "black"
        ax.text(j, i, f"{count}\n{share[i, j]:.0%}", ha="center", va="center", color=colour)
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 4 else 0)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    return _save(fig, path)


def _curve_classes(classes: list[str], positive: int | None) -> list[int]:
    # Binary: the positive class's curve says it all (the other is its mirror image).
    return [positive] if positive is not None else list(range(len(classes)))


def plot_roc(
    probs: np.ndarray, labels: np.ndarray, classes: list[str], positive: int | None, path: Path
) -> Path:
    """ROC curve of the positive class (binary) or of every class one-vs-rest."""
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.subplots()
    for k in _curve_classes(classes, positive):
        y = labels == k
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, probs[:, k])
            ax.plot(fpr, tpr, label=f"{classes[k]} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_pr(
    probs: np.ndarray, labels: np.ndarray, classes: list[str], positive: int | None, path: Path
) -> Path:
    """Precision-recall curve of the positive class (binary) or of every class one-vs-rest."""
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.subplots()
    for k in _curve_classes(classes, positive):
        y = labels == k
        if 0 < y.sum() < len(y):
            precision, recall, _ = precision_recall_curve(y, probs[:, k])
            ap = average_precision_score(y, probs[:, k])
            ax.step(recall, precision, where="post", label=f"{classes[k]} (AP {ap:.3f})")
            ax.axhline(y.mean(), linestyle=":", color="grey", linewidth=0.8)
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_reliability(
    probs: np.ndarray, labels: np.ndarray, ece: float, path: Path, n_bins: int = ECE_BINS
) -> Path:
    """Reliability diagram of top-label confidence: observed accuracy per confidence bin."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    fig = Figure(figsize=(4.6, 5.2))
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    if correct.all() or not correct.any():
        # calibration_curve needs both outcomes; one outcome is a flat line at 0 or 1.
        ax.axhline(float(correct.mean()), marker="o", label="model")
    else:
        observed, predicted = calibration_curve(correct, confidence, n_bins=n_bins)
        ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ax.set(ylabel="accuracy", title=f"reliability (ECE {ece:.3f}, {n_bins} bins)", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    hist.hist(confidence, bins=n_bins, range=(0, 1), color="grey")
    hist.set(xlabel="confidence (top-label probability)", ylabel="images", xlim=(0, 1))
    return _save(fig, path)


def risk_coverage(
    probs: np.ndarray, labels: np.ndarray, threshold: float | None, positive: int
) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, error among the answered) as the images farthest from the cut are answered
    first: the trade an UNSURE band makes, for every width of the band."""
    predicted = decide(probs, threshold, positive)
    if probs.shape[1] == 2:
        cut = 0.5 if threshold is None else threshold
        margin = np.abs(probs[:, positive] - cut)
    else:
        margin = probs.max(1)
    wrong = predicted != labels
    order = np.argsort(-margin, kind="stable")
    n = np.arange(1, len(labels) + 1)
    return n / len(labels), np.cumsum(wrong[order]) / n


def plot_risk_coverage(
    probs: np.ndarray,
    labels: np.ndarray,
    threshold: float | None,
    positive: int,
    path: Path,
    chosen: tuple[float, float] | None = None,
) -> Path:
    """Error of the answers given against the share of images answered (risk-coverage)."""
    coverage, risk = risk_coverage(probs, labels, threshold, positive)
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.plot(coverage, risk, label="answering the most certain first")
    if chosen is not None:
        ax.plot(*chosen, "o", color="C3", label="the frozen UNSURE band, here")
    ax.set(
        xlabel="coverage (share of images answered)",
        ylabel="error among the answers",
        title="risk-coverage",
        xlim=(0, 1),
        ylim=(0, max(0.05, float(risk.max()) * 1.05)),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_mistakes(
    images: torch.Tensor | Sequence[torch.Tensor],
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    names: list[str],
    path: Path,
    threshold: float | None = None,
    positive: int = 1,
    count: int = 16,
) -> Path:
    """Grid of the most confident wrong predictions, each with its probability and file name."""
    predicted = decide(probs, threshold, positive)
    confidence = probs[np.arange(len(probs)), predicted]
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    columns = 4
    rows = max(1, -(-len(worst) // columns))
    fig = Figure(figsize=(2.3 * columns, 2.6 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    if len(worst) == 0:
        axes[0].text(0, 0.5, "no mistakes", fontsize=12)
    for ax, i in zip(axes, worst.tolist(), strict=False):
        image = images[i][None].float()  # a tensor row, or one native image of a ragged split
        scale = max(1, MISTAKE_PIXELS // image.shape[-1])
        big = F.interpolate(image, scale_factor=scale, mode="nearest")[0]
        ax.imshow(big.permute(1, 2, 0).byte().numpy(), interpolation="nearest")
        name = names[i].rsplit("/", 1)[-1]
        ax.set_title(
            f"true {classes[labels[i]]} → {classes[predicted[i]]}\n"
            f"p={confidence[i]:.3f}  {name[:22]}",
            fontsize=7,
        )
    fig.suptitle(f"most confident mistakes ({len(wrong)} wrong of {len(labels)})")
    return _save(fig, path)


def plot_study_curves(histories: dict[str, list[pd.DataFrame]], path: Path) -> Path:
    """Overlaid learning curves of several arms (mean over each arm's seeds): loss and accuracy."""
    fig = Figure(figsize=(10, 3.8))
    loss_ax, acc_ax = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(histories))]
    for (arm, frames), colour in zip(histories.items(), colours, strict=True):
        frames = [f for f in frames if len(f)]
        if not frames:
            continue
        mean = pd.concat(frames).groupby("epoch").mean(numeric_only=True)
        epoch = mean.index + 1
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
            for split, style in (("val", "-"), ("train", "--")):
                ax.plot(
                    epoch,
                    mean[f"{split}_{metric}"],
                    style,
                    color=colour,
                    marker="o" if split == "val" else ".",
                    markersize=3,
                    alpha=1.0 if split == "val" else 0.6,
                    label=f"{arm} {split}",
                )
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set(xlabel="epoch", ylabel=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    # One diverging arm would flatten every other curve on a linear axis.
    loss_ax.set_yscale("log")
    acc_ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("learning curves (solid: validation, dashed: train)")
    return _save(fig, path)


def plot_per_source(per_source: dict[str, dict], path: Path) -> Path:
    """Accuracy and ROC-AUC of each source's images, side by side (per_source_metrics)."""
    names = list(per_source)
    x = np.arange(len(names))
    width = 0.38
    fig = Figure(figsize=(max(4.6, 1.2 + 1.1 * len(names)), 4.2))
    ax = fig.subplots()
    for offset, key, label in (
        (-width / 2, "accuracy", "accuracy"),
        (width / 2, "roc_auc", "ROC-AUC"),
    ):
        values = [per_source[n][key] for n in names]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + offset, heights, width, label=label)
        for centre, value in zip(x + offset, values, strict=True):
            text = "n/a" if value is None else f"{value:.3f}"
            top = 0.0 if value is None else value
            ax.annotate(
                text,
                (centre, top),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.axhline(0.5, linestyle=":", color="grey", linewidth=0.8, label="chance")
    ticks = [f"{n}\n({per_source[n]['n']} images)" for n in names]
    ax.set_xticks(x, ticks, rotation=30 if len(names) > 4 else 0, fontsize=8)
    # Fixed limits: autoscaling leaves out a missing (NaN) bar and would clip its "n/a".
    ax.set(ylabel="score", xlim=(-0.6, len(names) - 0.4), ylim=(0, 1.08))
    ax.set_title("per source: accuracy and ROC-AUC")
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: inside, it would hide the bars and their values.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8, frameon=False)
    return _save(fig, path)
