"""Three verdicts: the class, or UNSURE with its reason, instead of a confident wrong answer.

Two checks, both fitted on the run's own data by the deliberate calibration step
(``realfake evaluate --freeze-threshold``), give UNSURE:

- **The band.** P(positive) within ``unsure_margin`` of the frozen threshold. The margin is
  selective classification with a stated risk bound (Geifman & El-Yaniv, "Selective
  classification for deep neural networks", NeurIPS 2017): answering only the validation images
  whose margin is at least m, the one-sided 95% Clopper-Pearson upper bound of their error rate
  must stay within ``target_error``; the smallest such m (the largest coverage) is frozen.
- **Unlike the training images.** Lee et al.'s score ("A simple unified framework for detecting
  out-of-distribution samples and adversarial attacks", NeurIPS 2018): per layer, the
  Mahalanobis distance of an image's features to the nearest class mean, with one shared
  covariance fitted on training images, read at every stage of the network and combined. A
  stage's features are its output's per-channel mean over the image: low-level statistics
  tell sources apart that the last layer maps alike (after Quintanilha et al., "Detecting
  out-of-distribution samples using low-order deep features statistics", 2019); the
  penultimate features (what the classifier reads) are one more layer. Each layer's
  log-distance is standardised by the validation images' and the most unusual layer's is the
  score; beyond the ``OOD_QUANTILE`` of the validation images' scores the image is unlike what
  the model learnt from, and its probabilities say nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
PENULTIMATE = "penultimate"  # the layer name of the last linear layer's input
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
    """The classifier's last linear layer: its input is the feature vector the decision reads."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CheckpointError(f"{type(model).__name__} has no linear layer to read features at")
    return linears[-1]


def feature_stages(model: nn.Module) -> tuple[nn.Module, ...]:
    """The modules whose outputs are the model's stages, shallowest first (``feature_stages``)."""
    stages = getattr(model, "feature_stages", None)
    if not stages:
        raise CheckpointError(f"{type(model).__name__} does not say which modules are its stages")
    return tuple(stages)


def reference_layers(model: nn.Module) -> tuple[str, ...]:
    """The layers a new reference reads: every stage, then the penultimate features."""
    return (*(f"stage {k}" for k in range(1, len(feature_stages(model)) + 1)), PENULTIMATE)


def _stage_number(layer: str) -> int:
    """k of "stage k"; 0 for the penultimate features."""
    return 0 if layer == PENULTIMATE else int(layer.removeprefix("stage "))


def _nearest(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row to the nearest class mean."""
    f = np.asarray(features, dtype=np.float64)
    if len(f) == 0:
        return np.zeros(0)
    best = np.full(len(f), np.inf)
    for mean in means:
        d = f - mean
        best = np.minimum(best, np.einsum("nd,de,ne->n", d, precision, d))
    return best


def _log(distance: np.ndarray) -> np.ndarray:
    return np.log(distance + 1e-12)


@dataclass(frozen=True)
class FeatureDistance:
    """Per layer, the class means and shared precision of training features and the spread of
    validation images' distances; the cut-off of the combined score."""

    layers: tuple[str, ...]  # "stage 1", ..., "penultimate"
    means: tuple[np.ndarray, ...]  # per layer C×D
    precisions: tuple[np.ndarray, ...]  # per layer D×D, inverse of the shared (shrunk) covariance
    centre: np.ndarray  # per layer: validation images' median log-distance
    spread: np.ndarray  # per layer: their robust standard deviation of log-distance
    cutoff: float  # the OOD_QUANTILE of validation images' combined scores
    quantile: float
    checkpoint_sha256: str
    fitted_on: str  # for people: which images and layers

    def distances(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """N×L: per layer, the log squared Mahalanobis distance to the nearest class mean in
        units of the validation images' (0: their median, 1: one robust standard deviation)."""
        raw = np.stack(
            [
                _nearest(features[layer], means, precision)
                for layer, means, precision in zip(
                    self.layers, self.means, self.precisions, strict=True
                )
            ],
            axis=1,
        )
        return (_log(raw) - self.centre) / self.spread

    def score(self, distances: np.ndarray) -> np.ndarray:
        """The combined score of each row of ``distances``: its most unusual layer's.

        The max, not the sum: an image unlike the training images in one stage only (faces
        shrunk to 32 px differ in their low-level statistics, and the last layer maps them
        alike) keeps its full score instead of having it diluted by the other stages'
        in-distribution noise, and the reason can name the stage that decided. The choice
        rests on that argument and on validation images alone: standardised per layer, no
        layer dominates their max (on the CIFAKE run of BENCHMARKS.md each of the five is the
        most unusual for 11-28% of its validation images).
        """
        return np.asarray(distances, dtype=np.float64).max(axis=1)

    def why(self, distances: np.ndarray) -> str:
        """Why one image with this row of ``distances`` is unlike the training images."""
        most = ""
        if len(self.layers) > 1:
            most = f" (most of all {self._in_words(self.layers[int(np.argmax(distances))])})"
        return (
            "unlike the images it was trained on: its features are further from the training "
            f"images' than those of {self.quantile:.0%} of validation images{most}, so its "
            "probabilities say nothing here"
        )

    def _in_words(self, layer: str) -> str:
        k = _stage_number(layer)
        if k == 0:
            return "the features its decision is read from"
        n = max(_stage_number(name) for name in self.layers)
        level = "low-level" if k == 1 else "high-level" if k == n else "mid-level"
        return f"its {level} statistics, stage {k} of {n}"

    def save(self, path: Path) -> Path:
        arrays = {f"means_{i}": m for i, m in enumerate(self.means)}
        arrays |= {f"precision_{i}": p for i, p in enumerate(self.precisions)}
        with replacing(path) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                layers=np.array(self.layers, dtype=str),
                centre=self.centre,
                spread=self.spread,
                cutoff=self.cutoff,
                quantile=self.quantile,
                checkpoint_sha256=self.checkpoint_sha256,
                fitted_on=self.fitted_on,
                **arrays,
            )
        return path

    @classmethod
    def load(cls, path: Path) -> FeatureDistance:
        try:
            with np.load(path, allow_pickle=False) as data:
                common = (
                    float(data["quantile"]),
                    str(data["checkpoint_sha256"]),
                    str(data["fitted_on"]),
                )
                if "layers" not in data.files:
                    # A reference of the penultimate features alone, its cut-off on the raw
                    # distance: the same decisions as a layer whose score is the log-distance.
                    cutoff = float(_log(np.float64(data["cutoff"])))
                    return cls(
                        (PENULTIMATE,),
                        (data["means"],),
                        (data["precision"],),
                        np.zeros(1),
                        np.ones(1),
                        cutoff,
                        *common,
                    )
                layers = tuple(str(name) for name in data["layers"])
                for layer in layers:
                    _stage_number(layer)  # a ValueError for a layer this code cannot read
                n = range(len(layers))
                return cls(
                    layers,
                    tuple(data[f"means_{i}"] for i in n),
                    tuple(data[f"precision_{i}"] for i in n),
                    data["centre"],
                    data["spread"],
                    float(data["cutoff"]),
                    *common,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a feature-distance file: {exc}") from None


def _class_gaussians(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C×D) and the precision of the shared covariance around them (D×D)."""
    from sklearn.covariance import ledoit_wolf

    f = np.asarray(features, dtype=np.float64)
    classes = np.unique(labels)
    means = np.stack([f[labels == k].mean(0) for k in classes])
    centred = f - means[np.searchsorted(classes, labels)]
    # In units of each dimension's own spread, so that the shrinkage pulls towards the diagonal
    # rather than towards one variance for channels of every scale; a channel that never
    # varies (a dead ReLU) gets a floor instead of an infinite weight.
    scale = centred.std(0)
    scale = np.maximum(scale, 1e-3 * (np.median(scale[scale > 0]) if (scale > 0).any() else 1.0))
    # Ledoit & Wolf (2004): the shrinkage that keeps the inverse stable where the images are
    # few for the dimensions, estimated from the data rather than fixed.
    shrunk, _ = ledoit_wolf(centred / scale, assume_centered=True)
    return means, np.linalg.inv(shrunk) / np.outer(scale, scale)


def fit_feature_distance(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    val_features: Mapping[str, np.ndarray],
    checkpoint_sha256: str,
    fitted_on: str,
    quantile: float = OOD_QUANTILE,
) -> FeatureDistance:
    """Per layer of ``features``, class means and shared covariance; each layer's scale and the
    combined cut-off from ``val_features``."""
    labels = np.asarray(labels)
    layers = tuple(features)
    fitted = [_class_gaussians(features[layer], labels) for layer in layers]
    raw = _log(
        np.stack(
            [_nearest(val_features[k], *fit) for k, fit in zip(layers, fitted, strict=True)], 1
        )
    )
    # Log-distances are near normal (a squared distance is a sum of many terms), so the median
    # and half the 16th-84th percentile range put every layer on one scale, robust to the few
    # unusual validation images the cut-off is meant to find.
    centre = np.median(raw, axis=0)
    low, high = np.percentile(raw, [15.87, 84.13], axis=0)
    spread = np.maximum((high - low) / 2, 1e-6)
    partial = FeatureDistance(
        layers,
        tuple(means for means, _ in fitted),
        tuple(precision for _, precision in fitted),
        centre,
        spread,
        math.inf,
        quantile,
        checkpoint_sha256,
        fitted_on,
    )
    combined = partial.score((raw - centre) / spread)
    return replace(partial, cutoff=float(np.quantile(combined, quantile)))


def features_hook(model: nn.Module, views: int, layers: Sequence[str]) -> _FeatureHook:
    """A context that collects each image's features at ``layers``, averaged over ``views``
    calls (flip TTA runs the network twice per batch): a stage's per-channel spatial mean, or
    the last linear layer's input."""
    stages = feature_stages(model) if any(_stage_number(name) for name in layers) else ()
    modules = {}
    for layer in layers:
        k = _stage_number(layer)
        if k > len(stages):
            raise CheckpointError(f"{type(model).__name__} has no {layer}: it has {len(stages)}")
        modules[layer] = last_linear(model) if k == 0 else stages[k - 1]
    return _FeatureHook(modules, views)


def _stage_statistics(output: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean over the image of a N×C×H×W output."""
    # The mean alone: with each channel's standard deviation beside it, faces shrunk to 32 px
    # were told from CIFAKE less well (ROC-AUC 0.894 against 0.912; synthetic pictures 0.998
    # against 0.995: BENCHMARKS.md, "UNSURE verdicts").
    return output.detach().float().mean((2, 3)).cpu()


class _FeatureHook:
    def __init__(self, modules: dict[str, nn.Module], views: int) -> None:
        self.modules, self.views = modules, views
        self.captured: dict[str, list[torch.Tensor]] = {layer: [] for layer in modules}

    def __enter__(self) -> _FeatureHook:
        self.handles = [
            module.register_forward_hook(self._keeper(layer))
            for layer, module in self.modules.items()
        ]
        return self

    def _keeper(self, layer: str):
        keep = self.captured[layer]
        if layer == PENULTIMATE:
            return lambda module, inputs, output: keep.append(inputs[0].detach().float().cpu())
        # Reduced at once: a stage's map can be large, and a later in-place layer may change it.
        return lambda module, inputs, output: keep.append(_stage_statistics(output))

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def features(self) -> dict[str, np.ndarray]:
        """Per layer, N×D features, each the mean over its image's views."""
        return {layer: self._averaged(parts) for layer, parts in self.captured.items()}

    def _averaged(self, captured: list[torch.Tensor]) -> np.ndarray:
        v = self.views
        parts = [torch.stack(captured[i : i + v]).mean(0) for i in range(0, len(captured), v)]
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
    """(verdict, reason) per image: the decided class, or UNSURE saying why. ``distances``: per
    image and layer of ``ood`` (``FeatureDistance.distances``); ``sizes``: each image's original
    (width, height), checked against the training images' ``size_range``."""
    scores = None if ood is None or distances is None else ood.score(distances)
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
        if scores is not None and scores[i] > ood.cutoff:
            out.append((UNSURE, ood.why(distances[i])))
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
