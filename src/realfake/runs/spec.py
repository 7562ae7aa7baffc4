"""The model spec: everything needed to turn images into decisions with a trained network.

It is written into every checkpoint (``model_spec``) and beside it in the run directory
(``model.json``), so a service, an exporter or any command can rebuild the network, prepare
images exactly as training did and decide, without the training stack or its config schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from realfake.data.config import RESIZE_POLICIES, TILE_AGGREGATES
from realfake.errors import CheckpointError

SPEC_VERSION = 1
THRESHOLD_CRITERIA = ("accuracy", "youden")
# Validation images of each class a frozen threshold needs: with n images, the 95% interval of
# that class's recall is at most ±1.96·sqrt(0.25/n) wide (normal approximation at p = 0.5),
# ±4.9 points at n = 400. Below that, what a threshold buys on validation is within the noise
# of which images were drawn (realfake.inference.threshold uses it).
MIN_PER_CLASS = 400
BAND_FIELDS = (
    "unsure_margin",
    "target_error",
    "val_coverage",
    "val_selective_accuracy",
    "train_side_lo",
    "train_side_hi",
    "train_aspect_hi",
)


def default_positive_class(classes: Sequence[str]) -> str | None:
    """The class binary metrics call positive: FAKE when present (detection), else the second.

    The only place this rule lives: training resolves it once and records it in the spec.
    """
    if len(classes) != 2:
        return None
    return "FAKE" if "FAKE" in classes else classes[1]


@dataclass(frozen=True)
class FrozenThreshold:
    """A binary decision threshold on P(positive), chosen once on validation data."""

    value: float
    tta: bool  # the flip-TTA setting the probabilities were computed with
    criterion: str  # what the threshold maximised: accuracy | youden
    source: str  # where it was chosen, for people
    checkpoint_sha256: str  # the weights it belongs to
    # The UNSURE band: |P(positive) - value| below this margin gets no answer, because on
    # validation answers that close were wrong more often than ``target_error`` allows
    # (realfake.inference.verdict). None: no band (every image gets FAKE or REAL).
    unsure_margin: float | None = None
    target_error: float | None = None  # the error rate allowed among the answers given
    val_coverage: float | None = None  # share of validation images answered
    val_selective_accuracy: float | None = None  # accuracy of those answers on validation
    # The training images' own sizes (1st-99th percentile of the short side, 99th of the aspect
    # ratio): an image far outside them is UNSURE whatever its probabilities (verdict.py).
    train_side_lo: float | None = None
    train_side_hi: float | None = None
    train_aspect_hi: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.value, float) and 0.0 <= self.value <= 1.0):
            raise CheckpointError(f"threshold {self.value!r} is not a probability in [0, 1]")
        if self.criterion not in THRESHOLD_CRITERIA:
            raise CheckpointError(
                f"threshold criterion {self.criterion!r} is unknown; expected one of "
                f"{', '.join(THRESHOLD_CRITERIA)}"
            )
        margin = self.unsure_margin
        if margin is not None and not (0.0 <= margin <= 1.0):
            raise CheckpointError(f"threshold unsure_margin {margin!r} is not in [0, 1]")


@dataclass(frozen=True)
class ModelSpec:
    """Network, preprocessing and decision rule of one trained model."""

    model: str  # registry name
    classes: tuple[str, ...]  # label i means classes[i]
    image_size: int  # the network's input side in pixels
    resize: str  # how other sizes are brought to image_size: stretch | center_crop
    mean: tuple[float, float, float]  # per channel, [0, 1] units (of the training split)
    std: tuple[float, float, float]
    flip_tta: bool  # average with the mirror image, as the run validated and tested
    positive_class: str | None  # binary: the class scored positive (FAKE for CIFAKE)
    # Constructor options of the model beyond num_classes and image_size (dropout, stem, ...).
    model_options: Mapping[str, Any] = field(default_factory=dict)
    threshold: FrozenThreshold | None = None  # set once `realfake evaluate` chose one
    # The input rule for images of another size. 0: the whole image is brought to image_size
    # by ``resize`` (what the network was trained on when all images were resized). N > 0:
    # native pixels, never resized: up to N tiles of image_size×image_size spread over the
    # image, scored one by one and aggregated by ``tile_aggregate`` (NPR's authors: tile, do
    # not resize, or the upsampling traces a detector reads are gone).
    tiles: int = 0
    tile_aggregate: str = "mean"
    # With tiles, a run trained at native resolution (data.native) kept the central region of at
    # most this many pixels a side of larger images; prediction tiles that same region, so that
    # evaluate, predict and the service see the same pixels. 0: the whole image is tiled.
    native_max_side: int = 0

    def __post_init__(self) -> None:
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise CheckpointError(f"spec field 'classes': {list(self.classes)} are not 2+ names")
        if self.resize not in RESIZE_POLICIES:
            raise CheckpointError(f"spec field 'resize': {self.resize!r} is unknown")
        if not (isinstance(self.image_size, int) and self.image_size >= 1):
            raise CheckpointError(f"spec field 'image_size': {self.image_size!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise CheckpointError(f"spec field '{name}': expected 3 numbers, got {values}")
        if not (isinstance(self.tiles, int) and self.tiles >= 0):
            raise CheckpointError(f"spec field 'tiles': {self.tiles!r} is not a count >= 0")
        if self.tile_aggregate not in TILE_AGGREGATES:
            raise CheckpointError(f"spec field 'tile_aggregate': {self.tile_aggregate!r}")
        if not (isinstance(self.native_max_side, int) and self.native_max_side >= 0):
            raise CheckpointError(
                f"spec field 'native_max_side': {self.native_max_side!r} is not a side >= 0"
            )
        if min(self.std) <= 0:
            raise CheckpointError(f"spec field 'std': {self.std} must be positive")
        binary = len(self.classes) == 2
        if binary and self.positive_class not in self.classes:
            raise CheckpointError(
                f"spec field 'positive_class': {self.positive_class!r} is not one of "
                f"{list(self.classes)}"
            )
        if not binary and (self.positive_class is not None or self.threshold is not None):
            raise CheckpointError("a positive class and threshold need exactly two classes")

    @property
    def positive(self) -> int | None:
        """Index of the positive class (binary), else None."""
        return None if self.positive_class is None else self.classes.index(self.positive_class)

    def with_threshold(self, threshold: FrozenThreshold | None) -> ModelSpec:
        return replace(self, threshold=threshold)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/torch-safe types (checkpoints load with ``weights_only=True``)."""
        out = asdict(self)
        out["classes"] = list(self.classes)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        out["model_options"] = dict(self.model_options)
        out["version"] = SPEC_VERSION
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "model spec") -> ModelSpec:
        """The spec in ``data``, or a CheckpointError naming the missing or bad field."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}: expected a mapping, got {type(data).__name__}")
        version = data.get("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise CheckpointError(
                f"{where}: spec version {version} is not {SPEC_VERSION}; upgrade realfake"
            )
        try:
            threshold = data.get("threshold")
            return cls(
                model=str(data["model"]),
                classes=tuple(str(c) for c in data["classes"]),
                image_size=int(data["image_size"]),
                resize=str(data["resize"]),
                mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
                flip_tta=bool(data["flip_tta"]),
                positive_class=data["positive_class"],
                model_options=dict(data.get("model_options") or {}),
                tiles=int(data.get("tiles", 0)),
                tile_aggregate=str(data.get("tile_aggregate", "mean")),
                native_max_side=int(data.get("native_max_side", 0)),
                threshold=None
                if threshold is None
                else FrozenThreshold(
                    value=float(threshold["value"]),
                    tta=bool(threshold["tta"]),
                    criterion=str(threshold["criterion"]),
                    source=str(threshold["source"]),
                    checkpoint_sha256=str(threshold["checkpoint_sha256"]),
                    **{
                        k: None if threshold.get(k) is None else float(threshold[k])
                        for k in BAND_FIELDS
                    },
                ),
            )
        except KeyError as exc:
            raise CheckpointError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: {exc}") from None

    @classmethod
    def from_training_config(
        cls,
        config: Mapping[str, Any],
        classes: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> ModelSpec:
        """The spec of a run from its training config (plain dict) and its data's statistics."""
        model, data = config["model"], config["data"]
        options = {
            "dropout": model["dropout"],
            "block_dropout": model["block_dropout"],
            "stem": model["stem"],
            "zero_init_residual": model["zero_init_residual"],
            **dict(model.get("options") or {}),  # absent in checkpoints from before it existed
        }
        positive = data.get("positive_class") or default_positive_class(classes)
        return cls(
            model=str(model["name"]),
            classes=tuple(classes),
            image_size=int(data["image_size"]),
            resize=str(data["resize"]),
            mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in std),  # type: ignore[arg-type]
            flip_tta=bool(config.get("trainer", {}).get("flip_tta", False)),
            positive_class=positive if len(classes) == 2 else None,
            model_options=options,
            tiles=int(data.get("tiles") or 0),
            tile_aggregate=str(data.get("tile_aggregate") or "mean"),
            native_max_side=int(data.get("native_max_side") or 0)
            if data.get("native") and data.get("tiles")
            else 0,
        )

    def build_model(self):
        """A freshly initialised network of this spec (load the checkpoint's weights into it)."""
        from realfake.models import build_model

        return build_model(
            self.model, len(self.classes), image_size=self.image_size, **dict(self.model_options)
        )
