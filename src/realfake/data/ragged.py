"""Images of different sizes in one flat uint8 buffer: a split that mixes 32-px and 256-px images.

Image ``i`` is ``pixels[offsets[i] : offsets[i] + 3·h·w]`` read as 3×h×w (``shapes[i]`` is
(h, w)), channel planes one after the other as in a C-ordered 3×H×W array. The buffer may be a
memory-mapped cache file: indexing gives views into it, ``subset`` and ``concat`` copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
import torch


class RaggedImages(Sequence[torch.Tensor]):
    """uint8 3×H×W images of any sizes, stored back to back in one flat buffer."""

    def __init__(self, pixels: np.ndarray, offsets: np.ndarray, shapes: np.ndarray) -> None:
        self.pixels = pixels
        self.offsets = np.asarray(offsets, np.int64)
        self.shapes = np.asarray(shapes, np.int64).reshape(-1, 2)
        if len(self.offsets) != len(self.shapes):
            raise ValueError(f"{len(self.offsets)} offsets for {len(self.shapes)} image shapes")

    @classmethod
    def from_images(cls, images: Sequence[torch.Tensor] | torch.Tensor) -> RaggedImages:
        """Copies of ``images`` (a N×3×H×W tensor, a RaggedImages or a list of 3×H×W tensors)."""
        if isinstance(images, RaggedImages):
            return images.subset(np.arange(len(images)))
        arrays = [np.ascontiguousarray(image.cpu().numpy()) for image in images]
        shapes = np.array([a.shape[1:] for a in arrays], np.int64).reshape(-1, 2)
        lengths = 3 * shapes.prod(axis=1)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        pixels = np.empty(int(lengths.sum()), np.uint8)
        for array, start, n in zip(arrays, offsets.tolist(), lengths.tolist(), strict=True):
            pixels[start : start + n] = array.reshape(-1)
        return cls(pixels, offsets[: len(arrays)], shapes)

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, index: int) -> torch.Tensor: ...

    @overload
    def __getitem__(self, index: slice | np.ndarray | torch.Tensor | list[int]) -> RaggedImages: ...

    def __getitem__(
        self, index: int | slice | np.ndarray | torch.Tensor | list[int]
    ) -> torch.Tensor | RaggedImages:
        """Image ``index`` as a 3×H×W view of the buffer; a slice or an array of indices gives
        those images as a RaggedImages copy (as a tensor's fancy indexing copies)."""
        if isinstance(index, slice):
            return self.subset(np.arange(len(self))[index])
        if isinstance(index, (np.ndarray, torch.Tensor, list)):
            return self.subset(np.asarray(index, dtype=np.int64))
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"image index {index} out of range for {n} images")
        i %= n
        h, w = self.shapes[i].tolist()
        start = int(self.offsets[i])
        return torch.from_numpy(self.pixels[start : start + 3 * h * w].reshape(3, h, w))

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(len(self)):
            yield self[i]

    @property
    def nbytes(self) -> int:
        """Bytes of the images' pixels (what holding them in memory takes)."""
        return int(3 * self.shapes.prod(axis=1).sum())

    def uniform(self) -> tuple[int, int] | None:
        """(h, w) when every image has that one size, else None (also for no images)."""
        if len(self) == 0 or (self.shapes != self.shapes[0]).any():
            return None
        return int(self.shapes[0, 0]), int(self.shapes[0, 1])

    def subset(self, index: np.ndarray | list[int]) -> RaggedImages:
        """The images at ``index``, in that order, copied into a compact buffer."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        shapes = self.shapes[idx]
        lengths = 3 * shapes.prod(axis=1)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)[: len(idx)]
        pixels = np.empty(int(lengths.sum()), np.uint8)
        sources = self.offsets[idx]
        for src, dst, n in zip(sources.tolist(), offsets.tolist(), lengths.tolist(), strict=True):
            pixels[dst : dst + n] = self.pixels[src : src + n]
        return RaggedImages(pixels, offsets, shapes)

    @staticmethod
    def concat(parts: Sequence[RaggedImages | torch.Tensor]) -> RaggedImages:
        """The images of ``parts`` (RaggedImages or N×3×H×W tensors) one after the other, copied."""
        ragged = [p if isinstance(p, RaggedImages) else RaggedImages.from_images(p) for p in parts]
        pixels = np.concatenate([r.subset(np.arange(len(r))).pixels for r in ragged])
        shapes = np.concatenate([r.shapes for r in ragged]).reshape(-1, 2)
        lengths = 3 * shapes.prod(axis=1)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)[: len(shapes)]
        return RaggedImages(pixels, offsets, shapes)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Exact per-channel mean and std in [0, 1] units of every pixel of every image."""
        counts = np.zeros(3 * 256, np.int64)
        # The channel's value histogram in one bincount per image: value + 256 · channel.
        for i in range(len(self)):
            planes = self[i].numpy().reshape(3, -1).astype(np.int64)
            planes += np.arange(3)[:, None] * 256
            counts += np.bincount(planes.reshape(-1), minlength=3 * 256)
        table = torch.from_numpy(counts.reshape(3, 256)).double()
        values = torch.arange(256, dtype=torch.float64) / 255.0
        total = table.sum(1)
        mean = (table * values).sum(1) / total
        var = (table * values**2).sum(1) / total - mean**2
        return tuple(mean.tolist()), tuple(var.clamp_min(1e-12).sqrt().tolist())
