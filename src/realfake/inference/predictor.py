"""The Predictor: a trained network with its preprocessing and decision rule, without Lightning.

``BasePredictor`` holds what every backend shares (spec, decoding and resizing, batching);
``Predictor`` runs the network with torch and ``realfake.inference.onnx.OnnxPredictor`` runs an
exported graph with ONNX Runtime. Decisions are the ``Scorer``'s (``realfake.inference.scorer``),
which wraps a predictor with its TTA, batch size and decision rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from realfake.data.augment import normalize
from realfake.data.decode import (
    decode_image,
    decode_native,
    describe_failure,
    native_image,
    prepare_image,
    to_tile_size,
)
from realfake.data.tiles import aggregate_tiles, image_tiles
from realfake.errors import CheckpointError, ConfigError, DataError
from realfake.runs import (
    ModelSpec,
    RunDir,
    checkpoint_spec,
    file_sha256,
    load_checkpoint,
    model_state,
    resolve_checkpoint,
)

# One image as a caller may hold it: a file path, encoded bytes, a PIL image or a uint8 tensor
# 3×H×W of any size.
ImageInput = Union[str, Path, bytes, "PIL.Image.Image", torch.Tensor]  # noqa: F821


def tta_probabilities(model: nn.Module, x: torch.Tensor, flip: bool) -> torch.Tensor:
    """Softmax of ``model(x)`` (normalised N×3×H×W), averaged with the mirror image's when ``flip``.

    The one definition of flip TTA: training's validation and test steps use it too, so the
    figures a run reports are the ones its predictor reproduces.
    """
    probs = model(x).float().softmax(dim=1)
    if flip:
        # The mirror image is a free, label-preserving second opinion (airbench's TTA).
        probs = (probs + model(x.flip(-1)).float().softmax(dim=1)) / 2
    return probs


class BasePredictor(ABC):
    """Spec and preprocessing shared by every backend; subclasses run the network.

    A backend implements ``_forward`` (prepared uint8 images in, probabilities out); decoding,
    resizing and batching live here once, so the torch and ONNX Runtime predictors of one run
    give the same probabilities by construction.
    """

    backend: str  # what runs the network: "torch", "onnx"

    def __init__(
        self, spec: ModelSpec, checkpoint: Path | None = None, run: RunDir | None = None
    ) -> None:
        self.spec = spec
        self.checkpoint = checkpoint  # the file the weights came from (.ckpt, .onnx)
        self.run = run

    @abstractmethod
    def _forward(self, images: torch.Tensor, flip: bool) -> np.ndarray:
        """Probabilities (n×C) of one batch of prepared uint8 images n×3×H×W."""

    # --- what the model is ------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        return list(self.spec.classes)

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @property
    def positive(self) -> int | None:
        """Index of the positive class (binary models), else None."""
        return self.spec.positive

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the checkpoint file ('' for a model not loaded from one)."""
        return file_sha256(self.checkpoint) if self.checkpoint is not None else ""

    def resolve_tta(self, tta: bool | None) -> bool:
        """``tta`` as asked, or the run's own choice when None."""
        return self.spec.flip_tta if tta is None else bool(tta)

    # --- images in ---------------------------------------------------------------------------

    def prepare(self, image: ImageInput) -> torch.Tensor:
        """One image as the network sees it (3×S×S uint8), decoded and resized as in training.

        Raises DataError saying why when the input cannot be decoded.
        """
        size, resize = self.spec.image_size, self.spec.resize
        try:
            if isinstance(image, torch.Tensor):
                return self._prepare_tensor(image)
            if isinstance(image, (str, Path)):
                data = Path(image).read_bytes()
                return torch.from_numpy(decode_image(data, size, resize)[0].copy())
            if isinstance(image, (bytes, bytearray, memoryview)):
                return torch.from_numpy(decode_image(bytes(image), size, resize)[0].copy())
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{_describe(image)}: {describe_failure(exc)}") from None
        from PIL import Image

        if isinstance(image, Image.Image):
            return torch.from_numpy(prepare_image(image, size, resize).copy())
        raise DataError(
            f"cannot read an image from a {type(image).__name__}; expected a path, bytes, a PIL "
            "image or a uint8 tensor 3×H×W"
        )

    def _prepare_tensor(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise DataError(
                f"expected a uint8 image tensor 3×H×W, got {image.dtype} {tuple(image.shape)}"
            )
        if tuple(image.shape[1:]) == (self.image_size, self.image_size):
            return image.cpu()
        # Through Pillow, as the data layer resizes files: the same pixels as training saw.
        pixels = to_tile_size(image.cpu().numpy(), self.image_size, self.spec.resize)
        return torch.from_numpy(pixels.copy())

    def prepare_batch(self, images: Sequence[ImageInput] | torch.Tensor) -> torch.Tensor:
        """N×3×S×S uint8 from a batch tensor of any size or a sequence of single images."""
        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
                raise DataError(
                    f"expected uint8 images N×3×H×W, got {images.dtype} {tuple(images.shape)}"
                )
            if tuple(images.shape[-2:]) == (self.image_size, self.image_size):
                return images
        if len(images) == 0:
            return torch.empty(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return torch.stack([self.prepare(image) for image in images])

    # --- probabilities and decisions --------------------------------------------------------

    def probabilities(
        self,
        images: Sequence[ImageInput] | torch.Tensor,
        *,
        tta: bool | None = None,
        batch_size: int = 256,
        resize: bool = True,
        progress: bool = False,
        tile_counts: list[int] | None = None,
    ) -> np.ndarray:
        """Class probabilities (N×C float64) of images, in batches of ``batch_size``.

        ``tta`` None follows the run (its validation and test used flip TTA or not).
        ``resize=False`` feeds uint8 N×3×H×W images at their own size (the models pool
        globally): for probes of scale, not for decisions. ``tile_counts``, when the spec
        scores tiles: a list this fills with each image's number of tiles, in order, which is
        how a hook on the network (one row per tile) tells the images' rows apart.
        """
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size}: expected at least 1 image per batch")
        flip = self.resolve_tta(tta)
        if self.spec.tiles and resize and not self.is_prepared(images):
            return self._tile_probabilities(images, flip, batch_size, tile_counts)
        if resize or not isinstance(images, torch.Tensor):
            images = self.prepare_batch(images)
        return self._batched(images, flip, batch_size, progress)

    def is_prepared(self, images: Sequence[ImageInput] | torch.Tensor) -> bool:
        """A uint8 N×3×S×S batch at the network's size: each image is its own single tile."""
        size = (self.image_size, self.image_size)
        return isinstance(images, torch.Tensor) and tuple(images.shape[-2:]) == size

    # --- native resolution: tiles ------------------------------------------------------------

    def native(self, image: ImageInput) -> torch.Tensor:
        """One image at its own size, upright and RGB (3×H×W uint8), never resized."""
        try:
            if isinstance(image, torch.Tensor):
                if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
                    raise DataError(
                        f"expected a uint8 image tensor 3×H×W, got {image.dtype} "
                        f"{tuple(image.shape)}"
                    )
                return image.cpu()
            if isinstance(image, (str, Path)):
                return torch.from_numpy(decode_native(Path(image).read_bytes()).copy())
            if isinstance(image, (bytes, bytearray, memoryview)):
                return torch.from_numpy(decode_native(bytes(image)).copy())
            from PIL import Image

            if isinstance(image, Image.Image):
                return torch.from_numpy(native_image(image).copy())
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{_describe(image)}: {describe_failure(exc)}") from None
        raise DataError(
            f"cannot read an image from a {type(image).__name__}; expected a path, bytes, a PIL "
            "image or a uint8 tensor 3×H×W"
        )

    def tiles(self, image: torch.Tensor) -> torch.Tensor:
        """The spec's tiles of one native image (K×3×S×S uint8, K <= spec.tiles), by the tile
        rule (realfake.data.tiles): an image smaller than S on a side is brought to S×S by the
        spec's resize policy, the one place pixels are resampled in this mode; a run trained at
        native resolution tiles the central region its training images kept."""
        spec = self.spec
        return image_tiles(image, spec.image_size, spec.tiles, spec.resize, spec.native_max_side)

    def _tile_probabilities(
        self,
        images: Sequence[ImageInput] | torch.Tensor,
        flip: bool,
        batch_size: int,
        counts: list[int] | None = None,
    ) -> np.ndarray:
        """Each image's tiles scored, then aggregated by the spec's rule (mean, or max).

        Tiles of consecutive images share forward passes of up to ``batch_size`` tiles (a
        CIFAKE image is one tile: one pass per image would cost twenty times more), and only
        one batch's worth of decoded images is held at a time.
        """
        out = np.empty((len(images), len(self.spec.classes)), dtype=np.float64)
        pending: list[tuple[int, torch.Tensor]] = []
        held = 0  # tiles in pending

        def flush() -> None:
            nonlocal held
            probs = self._batched(torch.cat([t for _, t in pending]), flip, batch_size, False)
            start = 0
            for i, tiles in pending:
                part = probs[start : start + len(tiles)]
                out[i] = aggregate_tiles(part, self.spec.tile_aggregate, self.spec.positive)
                start += len(tiles)
            pending.clear()
            held = 0

        for i, image in enumerate(images):
            pending.append((i, self.tiles(self.native(image))))
            held += len(pending[-1][1])
            if counts is not None:
                counts.append(len(pending[-1][1]))
            if held >= batch_size:
                flush()
        if pending:
            flush()
        return out

    def _batched(
        self, images: torch.Tensor, flip: bool, batch_size: int, progress: bool
    ) -> np.ndarray:
        """Probabilities of prepared uint8 N×3×S×S images, ``batch_size`` at a time."""
        n = images.shape[0]
        out = np.empty((n, len(self.spec.classes)), dtype=np.float64)
        bar = _Progress(n, "predicting") if progress and n > batch_size else None
        try:
            for start in range(0, n, batch_size):
                batch = images[start : start + batch_size]
                out[start : start + batch.shape[0]] = self._forward(batch, flip)
                if bar:
                    bar.advance(batch.shape[0])
        finally:
            if bar:
                bar.close()
        return out


class Predictor(BasePredictor):
    """Network, spec and device of one checkpoint, ready to turn images into decisions."""

    backend = "torch"

    def __init__(
        self,
        model: nn.Module,
        spec: ModelSpec,
        checkpoint: Path | None = None,
        run: RunDir | None = None,
        device: str | torch.device = "cpu",
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, checkpoint, run)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config or {}  # the training config, when the checkpoint holds one

    @classmethod
    def load(cls, ref: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """A checkpoint file, or a run directory's best (else last) checkpoint."""
        path, run = resolve_checkpoint(ref)
        ckpt = load_checkpoint(path)
        spec = checkpoint_spec(ckpt, path)
        model = spec.build_model()
        try:
            model.load_state_dict(model_state(ckpt))
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path}: the weights do not fit model {spec.model!r} ({str(exc).splitlines()[0]})"
            ) from None
        hp = ckpt.get("hyper_parameters") or {}
        return cls(model, spec, path, run, device, hp.get("config"))

    @torch.inference_mode()
    def _forward(self, images: torch.Tensor, flip: bool) -> np.ndarray:
        x = normalize(images.to(self.device, non_blocking=True), self.spec.mean, self.spec.std)
        return tta_probabilities(self.model, x, flip).cpu().double().numpy()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W -> the network's normalised float input on its device."""
        return normalize(images.to(self.device), self.spec.mean, self.spec.std)


def _describe(image: Any) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"image bytes ({len(image)} bytes)"
    return type(image).__name__


class _Progress:
    """A transient rich progress bar (only on a terminal; it disappears once done)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def close(self) -> None:
        self._bar.stop()
