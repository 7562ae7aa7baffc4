"""The one owner of "images → decision": a predictor with its device, TTA, batch size and rule.

A ``Scorer`` is built once (at the command line or when the service starts) and passed to every
consumer: evaluate, predict, robustness, audits, explain, compare, attacks and serve. So the
same image gets the same probabilities and the same label everywhere, and every answer can say
which rule decided it (``rule.describe``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realfake.errors import ConfigError
from realfake.inference.backends import load_predictor
from realfake.inference.predictor import BasePredictor, ImageInput, Predictor
from realfake.inference.rule import DecisionRule, resolve_rule
from realfake.inference.verdict import (
    OOD_FILE,
    FeatureDistance,
    SizeRange,
    features_hook,
    reference_layers,
    verdicts,
)
from realfake.runs import ModelSpec, RunDir


@dataclass(frozen=True)
class Decision:
    """The decision on one image, the threshold that made it (None: arg-max), and the verdict:
    the label, or UNSURE when the band or the feature distance says the label means little."""

    label: str
    index: int
    probabilities: dict[str, float]  # per class, summing to 1
    threshold: float | None
    verdict: str = ""  # the label, or "UNSURE"
    reason: str = ""  # why, in one sentence


@dataclass(frozen=True)
class Scored:
    """Probabilities of images and, where the run has a feature-distance reference, distances."""

    probs: np.ndarray  # N×C
    # N×L: per layer of the reference, the standardised distance to the training features
    distances: np.ndarray | None
    sizes: np.ndarray | None = None  # N×2 original (width, height), when the inputs told them


@dataclass(frozen=True)
class Scorer:
    """Images in, probabilities and decisions out, by one predictor, TTA, batch size and rule."""

    predictor: BasePredictor
    tta: bool  # flip TTA, resolved (the run's own choice unless asked otherwise)
    batch_size: int
    rule: DecisionRule
    ood: FeatureDistance | None = None  # the run's out-of-distribution reference, if fitted
    ood_why: str = ""  # why there is none, for people

    @classmethod
    def build(
        cls,
        predictor: BasePredictor,
        *,
        tta: bool | None = None,
        batch_size: int = 256,
        threshold: str | float | None = None,
    ) -> Scorer:
        """A scorer of ``predictor``; ``threshold`` as ``resolve_rule`` reads it (None: run's)."""
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size}: expected at least 1 image per batch")
        flip = predictor.resolve_tta(tta)
        run = predictor.run
        where = str(run.path if run is not None else predictor.checkpoint or "the model")
        rule = resolve_rule(
            predictor.spec,
            predictor.sha256,
            run.spec if run is not None else None,
            flip,
            threshold,
            where,
        )
        ood, why = _feature_distance(predictor)
        return cls(predictor, flip, batch_size, rule, ood, why)

    @classmethod
    def open(
        cls,
        ref: str | Path,
        *,
        backend: str = "auto",
        device: str | torch.device = "cpu",
        threads: int | None = None,
        tta: bool | None = None,
        batch_size: int = 256,
        threshold: str | float | None = None,
    ) -> Scorer:
        """A scorer of a run directory, .ckpt or .onnx file (``load_predictor``'s backends)."""
        predictor = load_predictor(ref, backend=backend, device=device, threads=threads)
        return cls.build(predictor, tta=tta, batch_size=batch_size, threshold=threshold)

    def with_rule(self, rule: DecisionRule) -> Scorer:
        return replace(self, rule=rule)

    def with_ood(self, ood: FeatureDistance | None) -> Scorer:
        return replace(self, ood=ood, ood_why="" if ood else self.ood_why)

    # --- what the model is ------------------------------------------------------------------

    @property
    def spec(self) -> ModelSpec:
        return self.predictor.spec

    @property
    def classes(self) -> list[str]:
        return self.predictor.classes

    @property
    def positive(self) -> int | None:
        return self.predictor.positive

    @property
    def image_size(self) -> int:
        return self.predictor.image_size

    @property
    def checkpoint(self) -> Path | None:
        return self.predictor.checkpoint

    @property
    def run(self) -> RunDir | None:
        return self.predictor.run

    @property
    def sha256(self) -> str:
        return self.predictor.sha256

    @property
    def backend(self) -> str:
        return self.predictor.backend

    def torch_predictor(self, why: str = "this needs the network's gradients") -> Predictor:
        """The torch predictor (Grad-CAM and white-box attacks need the network), or a
        ConfigError saying so for an exported graph."""
        if not isinstance(self.predictor, Predictor):
            raise ConfigError(
                f"{self.checkpoint}: {why}; give the run directory or its .ckpt, not an "
                "exported ONNX graph"
            )
        return self.predictor

    def describe_rule(self) -> str:
        """The rule in one line, e.g. 'arg-max (no threshold was frozen for this model)'."""
        return self.rule.describe(self.classes)

    def rule_record(self) -> dict[str, Any]:
        """What every answer records of how it was decided: the rule, TTA and the weights."""
        return {
            **self.rule.to_dict(self.classes),
            "tta": self.tta,
            "checkpoint_sha256": self.sha256,
        }

    # --- probabilities and decisions --------------------------------------------------------

    def probabilities(
        self,
        images: Sequence[ImageInput] | torch.Tensor,
        *,
        resize: bool = True,
        progress: bool = False,
    ) -> np.ndarray:
        """Class probabilities (N×C float64), with this scorer's TTA and batch size."""
        return self.predictor.probabilities(
            images, tta=self.tta, batch_size=self.batch_size, resize=resize, progress=progress
        )

    def score(
        self,
        images: Sequence[ImageInput] | torch.Tensor,
        *,
        sizes: np.ndarray | None = None,
        progress: bool = False,
    ) -> Scored:
        """Probabilities and, with a feature-distance reference, each image's distances to the
        training features (read from the same forward passes); ``sizes``: the images' original
        (width, height) when the caller knows them (else read from files, bytes and images)."""
        if sizes is None:
            sizes = original_sizes(images)
        if self.ood is None:
            return Scored(self.probabilities(images, progress=progress), None, sizes)
        probs, features = self._with_features(images, self.ood.layers, progress)
        return Scored(probs, self.ood.distances(features), sizes)

    def features(
        self, images: Sequence[ImageInput] | torch.Tensor, layers: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Per layer (default: those a new reference reads), the features (N×D) the distances
        read, as ``score`` computes them."""
        if layers is None:
            layers = reference_layers(self.torch_predictor().model)
        return self._with_features(images, layers, False)[1]

    def _with_features(
        self, images: Sequence[ImageInput] | torch.Tensor, layers: Sequence[str], progress: bool
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Probabilities and, from the same forward passes, the features at ``layers``."""
        model = self.torch_predictor("the out-of-distribution check needs its features").model
        views = 2 if self.tta else 1
        tiled = bool(self.spec.tiles) and not self.predictor.is_prepared(images)
        counts: list[int] = []
        with features_hook(model, views, layers) as hook:
            probs = self.predictor.probabilities(
                images,
                tta=self.tta,
                batch_size=self.batch_size,
                progress=progress,
                tile_counts=counts if tiled else None,
            )
        features = hook.features()
        if not tiled:
            return probs, features
        # Tiles of several images share forward passes: the hook saw one row per tile, in the
        # images' order. An image's features are the mean over its tiles (and views).
        ends = np.cumsum(counts)
        return probs, {
            layer: np.stack(
                [rows[end - n : end].mean(0) for n, end in zip(counts, ends, strict=True)]
            )
            if counts
            else np.zeros((0, 0))
            for layer, rows in features.items()
        }

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Class index per row of probabilities, by this scorer's rule."""
        return self.rule.decide(probs)

    @property
    def size_range(self) -> SizeRange | None:
        """The training images' sizes, recorded when the rule was frozen (else None)."""
        frozen = self.rule.frozen
        if frozen is None or frozen.train_side_lo is None:
            return None
        assert frozen.train_side_hi is not None and frozen.train_aspect_hi is not None
        return SizeRange(frozen.train_side_lo, frozen.train_side_hi, frozen.train_aspect_hi)

    def verdicts(
        self,
        probs: np.ndarray,
        distances: np.ndarray | None = None,
        sizes: np.ndarray | None = None,
    ) -> list[tuple[str, str]]:
        """(verdict, reason) per image: the decided class, or UNSURE saying why."""
        frozen = self.rule.frozen
        return verdicts(
            probs,
            self.classes,
            self.decide(probs),
            self.rule.threshold,
            self.positive,
            None if frozen is None else frozen.unsure_margin,
            None if frozen is None else frozen.target_error,
            distances,
            self.ood,
            sizes,
            self.size_range,
        )

    def decisions(
        self,
        probs: np.ndarray,
        distances: np.ndarray | None = None,
        sizes: np.ndarray | None = None,
    ) -> list[Decision]:
        """One Decision per row of probabilities (``distances``, ``sizes``: from ``score``)."""
        classes = self.classes
        chosen = self.decide(probs)
        said = self.verdicts(probs, distances, sizes)
        return [
            Decision(
                classes[k],
                int(k),
                {c: float(p) for c, p in zip(classes, row, strict=True)},
                self.rule.threshold,
                verdict,
                reason,
            )
            for k, row, (verdict, reason) in zip(chosen.tolist(), probs, said, strict=True)
        ]

    def predict(self, images: Sequence[ImageInput] | torch.Tensor) -> list[Decision]:
        """A decision per image."""
        scored = self.score(images)
        return self.decisions(scored.probs, scored.distances, scored.sizes)


def original_sizes(images: Sequence[ImageInput] | torch.Tensor) -> np.ndarray | None:
    """Each image's (width, height) as it came, read from headers only; None for a batch
    tensor (already prepared: its original sizes are gone) or an unreadable input."""
    if isinstance(images, torch.Tensor):
        return None
    out = np.zeros((len(images), 2), dtype=np.int64)
    for i, image in enumerate(images):
        try:
            if isinstance(image, torch.Tensor):
                out[i] = (image.shape[-1], image.shape[-2])
                continue
            from PIL import Image

            if isinstance(image, Image.Image):
                out[i] = image.size
                continue
            source = io.BytesIO(bytes(image)) if not isinstance(image, (str, Path)) else image
            with Image.open(source) as opened:  # the header: no pixels decoded
                out[i] = opened.size
        except Exception:  # unreadable: scoring it reports why; no size check here
            return None
    return out


def _feature_distance(predictor: BasePredictor) -> tuple[FeatureDistance | None, str]:
    """The run's feature-distance reference for these weights, or why there is none."""
    if not isinstance(predictor, Predictor):
        return None, "the out-of-distribution check needs the network's features (torch backend)"
    run = predictor.run
    path = None if run is None else run.path / OOD_FILE
    if path is None or not path.is_file():
        return None, "no out-of-distribution reference was fitted for this model"
    ood = FeatureDistance.load(path)
    if ood.checkpoint_sha256 != predictor.sha256:
        return None, f"{path.name} belongs to other weights"
    return ood, ""


def as_scorer(model: Scorer | str | Path, device: str | torch.device = "cpu") -> Scorer:
    """``model`` itself, or the default scorer of a run, .ckpt or .onnx path (library use)."""
    return model if isinstance(model, Scorer) else Scorer.open(model, device=device)
