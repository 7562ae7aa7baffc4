"""Three verdicts: the class, or UNSURE with its reason, instead of a confident wrong answer.

Two checks, both fitted on the run's own data by the deliberate calibration step
(``realfake evaluate --freeze-threshold``), give UNSURE:

- **The band.** P(positive) within ``unsure_margin`` of the frozen threshold. The margin is
  selective classification with a stated risk bound (Geifman & El-Yaniv, "Selective
  classification for deep neural networks", NeurIPS 2017): answering only the validation images
  whose margin is at least m, the one-sided 95% Clopper-Pearson upper bound of their error rate
  must stay within ``target_error``; the smallest such m (the largest coverage) is frozen.
- **Unlike the training images.** The Mahalanobis distance of the network's penultimate
  features to the nearest class mean, with one shared covariance (Lee et al., "A simple unified
  framework for detecting out-of-distribution samples and adversarial attacks", NeurIPS 2018),
  fitted on training images; beyond the ``OOD_QUANTILE`` of the validation images' distances the
  image is unlike what the model learnt from, and its probabilities say nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realfake.atomic import replacing
from realfake.errors import CheckpointError

TARGET_ERROR = 0.05  # errors allowed among the answers given (5%)
BAND_CONFIDENCE = 0.95  # one-sided confidence of the error bound on validation
OOD_QUANTILE = 0.99  # validation images beyond their own 99th percentile are 1% false alarms
OOD_FILE = "ood.npz"  # in the run directory, beside model.json
OOD_FIT_IMAGES = 5000  # training images the class means and covariance are fitted on (at most)
UNSURE = "UNSURE"


def error_upper_bound(errors: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound of an error rate: ``errors`` wrong of ``n``."""
    from scipy.stats import beta

    errors, n = np.asarray(errors, float), np.asarray(n, float)
    bound = beta.ppf(confidence, errors + 1, np.maximum(n - errors, 1e-12))
    return np.where(errors >= n, 1.0, bound)


@dataclass(frozen=True)
class Band:
    """The margin around the threshold that gets no answer, and what it did on validation."""

    margin: float
    target_error: float
    coverage: float  # share of validation images answered
    selective_accuracy: float  # accuracy of those answers


def choose_band(
    labels: np.ndarray,
    p_positive: np.ndarray,
    positive: int,
    threshold: float,
    target_error: float = TARGET_ERROR,
    confidence: float = BAND_CONFIDENCE,
) -> Band | None:
    """The smallest margin whose answered validation images keep the error bound within
    ``target_error``; None when even the most confident answers do not."""
    labels = np.asarray(labels)
    p = np.asarray(p_positive, dtype=np.float64)
    if len(p) == 0:
        return None
    margin = np.abs(p - threshold)
    wrong = np.where(p >= threshold, positive, 1 - positive) != labels
    order = np.argsort(-margin, kind="stable")
    sorted_margin = margin[order]
    n = np.arange(1, len(p) + 1)
    upper = error_upper_bound(np.cumsum(wrong[order]), n, confidence)
    # Only cuts between two distinct margins can be applied to new images.
    distinct = np.append(sorted_margin[:-1] > sorted_margin[1:], True)
    good = np.flatnonzero((upper <= target_error) & distinct)
    if len(good) == 0:
        return None
    k = int(good[-1]) + 1  # answer the k most confident images
    below = sorted_margin[k] if k < len(p) else 0.0
    cut = float((sorted_margin[k - 1] + below) / 2)
    answered = margin >= cut
    return Band(cut, target_error, float(answered.mean()), float(1 - wrong[answered].mean()))


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier's last linear layer: its input is the feature vector the distance uses."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CheckpointError(f"{type(model).__name__} has no linear layer to read features at")
    return linears[-1]


@dataclass(frozen=True)
class FeatureDistance:
    """Class means and shared precision of training features, and the distance cut-off."""

    means: np.ndarray  # C×D
    precision: np.ndarray  # D×D, inverse of the shared (shrunk) covariance
    cutoff: float  # the OOD_QUANTILE of validation images' distances
    quantile: float
    checkpoint_sha256: str
    fitted_on: str  # for people: which images

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to the nearest class mean."""
        f = np.asarray(features, dtype=np.float64)
        best = np.full(len(f), np.inf)
        for mean in self.means:
            d = f - mean
            best = np.minimum(best, np.einsum("nd,de,ne->n", d, self.precision, d))
        return best

    def save(self, path: Path) -> Path:
        with replacing(path) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                means=self.means,
                precision=self.precision,
                cutoff=self.cutoff,
                quantile=self.quantile,
                checkpoint_sha256=self.checkpoint_sha256,
                fitted_on=self.fitted_on,
            )
        return path

    @classmethod
    def load(cls, path: Path) -> FeatureDistance:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    data["means"],
                    data["precision"],
                    float(data["cutoff"]),
                    float(data["quantile"]),
                    str(data["checkpoint_sha256"]),
                    str(data["fitted_on"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a feature-distance file: {exc}") from None


def fit_feature_distance(
    features: np.ndarray,
    labels: np.ndarray,
    val_features: np.ndarray,
    checkpoint_sha256: str,
    fitted_on: str,
    quantile: float = OOD_QUANTILE,
) -> FeatureDistance:
    """Class means and shared covariance of ``features``; the cut-off from ``val_features``."""
    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    classes = sorted(set(labels.tolist()))
    means = np.stack([f[labels == k].mean(0) for k in classes])
    centred = f - means[np.searchsorted(classes, labels)]
    cov = centred.T @ centred / max(len(f) - len(classes), 1)
    # Shrinkage keeps the inverse stable where features are fewer than dimensions.
    cov += np.eye(cov.shape[0]) * (1e-3 * np.trace(cov) / cov.shape[0] + 1e-12)
    precision = np.linalg.inv(cov)
    partial = FeatureDistance(means, precision, math.inf, quantile, checkpoint_sha256, fitted_on)
    cutoff = float(np.quantile(partial.distance(val_features), quantile))
    return FeatureDistance(means, precision, cutoff, quantile, checkpoint_sha256, fitted_on)


def features_hook(model: nn.Module, views: int):
    """A context that collects the last linear layer's inputs, averaged over ``views`` calls
    (flip TTA runs the network twice per batch): the features the decision was made from."""
    return _FeatureHook(last_linear(model), views)


class _FeatureHook:
    def __init__(self, layer: nn.Linear, views: int) -> None:
        self.layer, self.views = layer, views
        self.captured: list[torch.Tensor] = []

    def __enter__(self) -> _FeatureHook:
        self.handle = self.layer.register_forward_hook(self._keep)
        return self

    def _keep(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output) -> None:
        self.captured.append(inputs[0].detach().float().cpu())

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()

    def features(self) -> np.ndarray:
        v = self.views
        parts = [
            torch.stack(self.captured[i : i + v]).mean(0) for i in range(0, len(self.captured), v)
        ]
        return torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros((0, 0))


SIZE_SLACK = 2.0  # sides within half to twice the training range count as familiar
ASPECT_SLACK = 1.5


@dataclass(frozen=True)
class SizeRange:
    """The training images' own sizes: the short side's 1st-99th percentile, the aspect's 99th."""

    side_lo: float
    side_hi: float
    aspect_hi: float

    @classmethod
    def of(cls, sizes: np.ndarray) -> SizeRange:
        """From the original (width, height) of the training images."""
        sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
        sizes = sizes[(sizes > 0).all(1)]
        short, long = sizes.min(1), sizes.max(1)
        lo, hi = np.percentile(short, [1, 99])
        return cls(float(lo), float(hi), float(np.percentile(long / short, 99)))

    def unfamiliar(self, width: int, height: int) -> bool:
        short, long = min(width, height), max(width, height)
        if short <= 0:
            return False
        far = short < self.side_lo / SIZE_SLACK or short > self.side_hi * SIZE_SLACK
        return far or long / short > max(self.aspect_hi, 1.0) * ASPECT_SLACK

    def describe(self) -> str:
        sides = (
            f"{self.side_lo:.0f} px"
            if self.side_lo == self.side_hi
            else f"{self.side_lo:.0f}-{self.side_hi:.0f} px"
        )
        return f"short side {sides}, aspect up to {self.aspect_hi:.2f}"


def verdicts(
    probs: np.ndarray,
    classes: list[str],
    decided: np.ndarray,
    threshold: float | None,
    positive: int | None,
    margin: float | None,
    target_error: float | None,
    distances: np.ndarray | None,
    ood: FeatureDistance | None,
    sizes: np.ndarray | None = None,
    size_range: SizeRange | None = None,
) -> list[tuple[str, str]]:
    """(verdict, reason) per image: the decided class, or UNSURE saying why. ``sizes``: each
    image's original (width, height), checked against the training images' ``size_range``."""
    out = []
    for i, k in enumerate(decided.tolist()):
        if size_range is not None and sizes is not None and size_range.unfamiliar(*sizes[i]):
            w, h = (int(v) for v in sizes[i])
            out.append(
                (
                    UNSURE,
                    f"unlike the images it was trained on: {w}×{h} is far from their size "
                    f"({size_range.describe()}), and brought to the model's input it is not "
                    "what the model learnt from",
                )
            )
            continue
        if ood is not None and distances is not None and distances[i] > ood.cutoff:
            out.append(
                (
                    UNSURE,
                    f"unlike the images it was trained on (feature distance {distances[i]:.0f} > "
                    f"{ood.cutoff:.0f}, which {ood.quantile:.0%} of validation images stay "
                    "under): its probabilities say nothing here",
                )
            )
            continue
        if threshold is None or positive is None:
            p = probs[i, k]
            out.append((classes[k], f"arg-max: P({classes[k]}) = {p:.3f}"))
            continue
        p = float(probs[i, positive])
        name = classes[positive]
        if margin is not None and abs(p - threshold) < margin:
            out.append(
                (
                    UNSURE,
                    f"P({name}) = {p:.3f} is within {margin:.3f} of the threshold "
                    f"{threshold:.3f}: on validation, answers this close were wrong more often "
                    f"than the {target_error:.0%} allowed",
                )
            )
            continue
        sign = ">=" if p >= threshold else "<"
        out.append((classes[k], f"P({name}) = {p:.3f} {sign} threshold {threshold:.3f}"))
    return out
