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
        if isinstance(images, (torch.Tensor, RaggedImages)):
            return cls.concat([images])
        arrays = [np.ascontiguousarray(image.cpu().numpy()) for image in images]
        shapes = np.array([a.shape[1:] for a in arrays], np.int64).reshape(-1, 2)
        offsets = _offsets(shapes)
        pixels = np.empty(int(3 * shapes.prod(axis=1).sum()), np.uint8)
        for array, start in zip(arrays, offsets.tolist(), strict=True):
            pixels[start : start + array.size] = array.reshape(-1)
        return cls(pixels, offsets, shapes)

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

    def array(self, index: int) -> np.ndarray:
        """Image ``index`` as a 3×H×W NumPy view of the buffer."""
        h, w = self.shapes[index]
        start = self.offsets[index]
        return self.pixels[start : start + 3 * h * w].reshape(3, h, w)

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
        offsets = _offsets(shapes)
        pixels = np.empty(int(3 * shapes.prod(axis=1).sum()), np.uint8)
        self._copy_into(pixels, offsets, idx)
        return RaggedImages(pixels, offsets, shapes)

    def _copy_into(self, pixels: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> None:
        """Copy images ``index`` to ``pixels`` at ``offsets``, one image at a time."""
        lengths = 3 * self.shapes[index].prod(axis=1)
        sources = self.offsets[index]
        for src, dst, n in zip(sources.tolist(), offsets.tolist(), lengths.tolist(), strict=True):
            pixels[dst : dst + n] = self.pixels[src : src + n]

    @staticmethod
    def concat(parts: Sequence[RaggedImages | torch.Tensor]) -> RaggedImages:
        """The images of ``parts`` (RaggedImages or N×3×H×W tensors) one after the other, copied
        once into one buffer."""
        shapes = np.concatenate(
            [
                p.shapes if isinstance(p, RaggedImages) else np.tile(p.shape[-2:], (len(p), 1))
                for p in parts
            ]
        ).reshape(-1, 2)
        offsets = _offsets(shapes)
        pixels = np.empty(int(3 * shapes.prod(axis=1).sum()), np.uint8)
        first = 0
        for part in parts:
            at = offsets[first : first + len(part)]
            if isinstance(part, RaggedImages):
                part._copy_into(pixels, at, np.arange(len(part)))
            elif len(part):  # a tensor's images are already back to back: one block
                block = part.cpu().numpy().reshape(-1)
                pixels[at[0] : at[0] + block.size] = block
            first += len(part)
        return RaggedImages(pixels, offsets, shapes.astype(np.int64))

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Exact per-channel mean and std in [0, 1] units of every pixel of every image."""
        counts = torch.zeros(3, 256, dtype=torch.float64)
        for block in self.blocks():
            for ch in range(3):
                counts[ch] += torch.bincount(block[:, ch].reshape(-1), minlength=256).double()
        values = torch.arange(256, dtype=torch.float64) / 255.0
        total = counts.sum(1)
        mean = (counts * values).sum(1) / total
        var = (counts * values**2).sum(1) / total - mean**2
        return tuple(mean.tolist()), tuple(var.clamp_min(1e-12).sqrt().tolist())

    def blocks(self, most: int = 4096) -> Iterator[torch.Tensor]:
        """Every image once, as n×3×h×w views of runs of images of one size lying back to back
        (at most ``most`` images each): whole-array passes instead of one per image."""
        if len(self) == 0:
            return
        lengths = 3 * self.shapes.prod(axis=1)
        joined = (self.shapes[1:] == self.shapes[:-1]).all(axis=1) & (
            self.offsets[1:] == self.offsets[:-1] + lengths[:-1]
        )
        starts = [0, *(np.flatnonzero(~joined) + 1).tolist()]
        for run_start, run_end in zip(starts, [*starts[1:], len(self)], strict=True):
            h, w = self.shapes[run_start].tolist()
            for first in range(run_start, run_end, most):
                count = min(most, run_end - first)
                at = int(self.offsets[first])
                flat = self.pixels[at : at + count * 3 * h * w]
                yield torch.from_numpy(flat.reshape(count, 3, h, w))


def _offsets(shapes: np.ndarray) -> np.ndarray:
    """Where each image of ``shapes`` (h, w) starts when they lie back to back."""
    lengths = 3 * shapes.prod(axis=1)
    return (np.cumsum(lengths) - lengths).astype(np.int64)
