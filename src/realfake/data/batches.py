"""Batches as slices of an in-memory uint8 tensor: no per-image Python collate.

A native split (data.native) is read by other datasets with the same samplers: training draws
one random crop of the network's size per image, validation and test get whole native images.

The DataLoader stays an ordinary one (dataset + sampler + batch_size); the samplers shard the
split between DDP processes themselves (Lightning's DistributedSampler would repeat images to
even out the shards, which skews validation and test figures). The dataset's ``__getitems__``
turns each list of indices into one fancy-indexed copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import default_collate

from realfake.data.loader import ImageSplit
from realfake.data.ragged import RaggedImages


class TensorImageDataset(Dataset):
    """(uint8 3×H×W image, int64 label) pairs of one split.

    Index ``i + len(self)`` is image ``i`` mirrored left-right: a sampler that decides the flips
    itself (``EpochShuffleSampler(alternate_flips=True)``) asks for the mirrored image that way.
    """

    def __init__(self, split: ImageSplit) -> None:
        self.images = split.images
        self.labels = split.labels
        # NumPy gathers on one thread: torch's parallel indexing costs ~8 ms per batch when the
        # cores are busy with other work (measured: 3.7 s vs 0.03 s per 60k-image epoch).
        self._np = (self.images.numpy(), self.labels.numpy()) if not self.images.is_cuda else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.labels)
        if indices and not 0 <= min(indices) <= max(indices) < 2 * n:
            raise IndexError(f"image index out of range 0..{2 * n - 1} (n = {n}, mirrored: +n)")
        if self._np is not None:
            idx = np.asarray(indices, dtype=np.int64)
            images, labels = self._np[0][idx % n], torch.from_numpy(self._np[1][idx % n])
            mirrored = idx >= n
            if mirrored.any():
                images[mirrored] = images[mirrored][..., ::-1]
            return torch.from_numpy(images), labels
        idx = torch.as_tensor(indices, dtype=torch.int64, device=self.images.device)
        images, labels = self.images[idx % n], self.labels[idx % n]
        mirrored = idx >= n
        if bool(mirrored.any()):
            images[mirrored] = images[mirrored].flip(-1)
        return images, labels


# The random stream of native crops, apart from the samplers' [seed, epoch] and [seed, 2**32].
_CROP_STREAM = 2**32 + 3


class NativeCropDataset(Dataset):
    """One random size×size crop of a native image per draw, with its label.

    Items are keyed by :class:`EpochDraws`: (epoch, index, repeat). The crop's corner comes from
    a generator seeded by (seed, epoch, image, repeat), so a run reproduces bit for bit and a
    resumed one crops as an uninterrupted one, whatever the loader's workers did; ``repeat``
    (the how-manieth draw of that image in the epoch, 0 unless a balanced sampler repeats it)
    gives a repeated image another crop. Index ``i + n`` is image ``i``'s crop mirrored
    left-right, as :class:`TensorImageDataset`.
    """

    def __init__(self, split: ImageSplit, size: int, seed: int) -> None:
        self.images = split.images
        self.labels = split.labels
        self.size = size
        self.seed = seed
        # NumPy views, as TensorImageDataset reads: torch slices cost more per image (measured:
        # 2.1 s vs 0.8 s for the 61,860 crops of a data=cifake_faces_native epoch).
        self._np = None if isinstance(self.images, RaggedImages) else self.images.numpy()

    def _array(self, image: int) -> np.ndarray:
        if self._np is not None:
            return self._np[image]
        return self.images.array(image)  # type: ignore[union-attr]

    def __len__(self) -> int:
        return len(self.labels)

    def corner(self, epoch: int, image: int, repeat: int = 0) -> tuple[int, int]:
        """(y, x) of the crop of ``image`` in ``epoch`` (its ``repeat``-th draw there)."""
        h, w = self._array(image).shape[-2:]
        return self._corner(h, w, epoch, image, repeat)

    def _corner(self, h: int, w: int, epoch: int, image: int, repeat: int) -> tuple[int, int]:
        if h == w == self.size:  # one place only (a CIFAKE image at 32 px): no generator to make
            return 0, 0
        key = [self.seed % 2**63, epoch, image, repeat, _CROP_STREAM]
        y, x = np.random.default_rng(key).integers(0, [h - self.size + 1, w - self.size + 1])
        return int(y), int(x)

    def __getitems__(self, keys: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        n, s = len(self.labels), self.size
        out = np.empty((len(keys), 3, s, s), dtype=np.uint8)
        rows = np.empty(len(keys), dtype=np.int64)
        for k, (epoch, index, repeat) in enumerate(keys):
            if not 0 <= index < 2 * n:
                raise IndexError(f"image index {index} out of range 0..{2 * n - 1} (mirrored: +n)")
            image = index % n
            pixels = self._array(image)
            y, x = self._corner(pixels.shape[1], pixels.shape[2], epoch, image, repeat)
            crop = pixels[:, y : y + s, x : x + s]
            out[k] = crop[..., ::-1] if index >= n else crop
            rows[k] = image
        return torch.from_numpy(out), self.labels[torch.from_numpy(rows)]

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.__getitems__([key])
        return images[0], labels[0]


class EpochDraws(Sampler[tuple[int, int, int]]):
    """A sampler's draws keyed for :class:`NativeCropDataset`: (epoch, index, repeat).

    The epoch travels with every index, so a dataset in a worker process (which never sees
    ``set_epoch``) still knows it. The wrapped sampler's order, sharding and flips are kept.
    """

    def __init__(self, sampler: EpochShuffleSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        epoch, n = self.sampler.epoch, self.sampler.n
        seen: dict[int, int] = {}
        for index in self.sampler:
            image = index % n
            repeat = seen.get(image, 0)
            seen[image] = repeat + 1
            yield epoch, index, repeat


class NativeImageDataset(Dataset):
    """Whole native images with their labels, for validation and test: a batch is one uint8
    B×3×H×W tensor when its images share one size, else a list of 3×H×W tensors."""

    def __init__(self, split: ImageSplit) -> None:
        self.images = split.images
        self.labels = split.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor | list[torch.Tensor], Any]:
        images = [self.images[i] for i in indices]
        labels = self.labels[torch.as_tensor(indices, dtype=torch.int64)]
        if len({tuple(image.shape) for image in images}) <= 1:
            return torch.stack(images) if images else torch.empty(0, 3, 0, 0), labels
        return images, labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def collate_batch(batch: Any) -> Any:
    """Pass through batches made by ``__getitems__`` (images: a tensor, or a list of native
    images of several sizes); fall back to the default otherwise."""
    if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[1], torch.Tensor):
        images = batch[0]
        if isinstance(images, torch.Tensor) or (
            isinstance(images, list) and all(isinstance(i, torch.Tensor) for i in images)
        ):
            return batch
    return default_collate(batch)


class EpochShuffleSampler(Sampler[int]):
    """This process's share of a permutation of ``range(n)`` fixed by (seed, epoch).

    With ``world`` processes each takes every ``world``-th index of the same permutation, cut to
    ``n // world`` so that all take the same number of steps. Lightning calls ``set_epoch``.

    With ``alternate_flips`` the sampler also decides which images are mirrored (index
    ``i + n`` for image ``i`` mirrored, see :class:`TensorImageDataset`): a random half, fixed by
    the seed, in even epochs and the other half in odd ones, so every two epochs show each image
    once each way (airbench's alternating flip). Every process draws the same half.
    """

    def __init__(
        self, n: int, seed: int = 0, rank: int = 0, world: int = 1, alternate_flips: bool = False
    ) -> None:
        self.n = n
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0
        self.alternate_flips = alternate_flips

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.world

    def draws(self) -> np.ndarray:
        """Every process's draws of this epoch, in order: a (seed, epoch) permutation."""
        return np.random.default_rng([self.seed % 2**63, self.epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[int]:
        order = self.draws()[self.rank :: self.world][: len(self)]
        if self.alternate_flips:
            # A generator of its own (seed only): the half mirrored in even epochs; an image
            # drawn twice in an epoch (a balanced sampler) is mirrored alike both times.
            first = np.random.default_rng([self.seed % 2**63, 2**32]).random(self.n) < 0.5
            mirrored = first[order] ^ bool(self.epoch % 2)
            order = order + self.n * mirrored
        return iter(order.tolist())


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order: every image exactly once over all processes."""

    def __init__(self, n: int, rank: int = 0, world: int = 1) -> None:
        self.indices = range(rank, n, world)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def make_loader(
    split: ImageSplit,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
    alternate_flips: bool = False,
    native_crop: int = 0,
) -> DataLoader:
    """A DataLoader over this process's share of one split; shuffled per (seed, epoch) when
    ``shuffle_seed`` is given, else in order; ``alternate_flips`` (shuffled loaders only)
    mirrors half the images as :class:`EpochShuffleSampler` says; ``native_crop`` as
    :func:`sampled_loader`."""
    sampler: Sampler[int] = (
        EpochShuffleSampler(len(split), shuffle_seed, rank, world, alternate_flips)
        if shuffle_seed is not None
        else ShardSampler(len(split), rank, world)
    )
    return sampled_loader(split, sampler, batch_size, num_workers, native_crop)


def sampled_loader(
    split: ImageSplit,
    sampler: Sampler[int],
    batch_size: int,
    num_workers: int = 0,
    native_crop: int = 0,
) -> DataLoader:
    """A DataLoader of ``split`` in ``sampler``'s order, a batch per ``__getitems__`` call.

    ``native_crop`` > 0 reads a split of native images (data.native): a sampler of epochs
    (training) draws one random crop of that side per image, any other (validation, test)
    gives whole native images.
    """
    dataset: Dataset
    if native_crop and isinstance(sampler, EpochShuffleSampler):
        dataset = NativeCropDataset(split, native_crop, sampler.seed)
        sampler = EpochDraws(sampler)  # type: ignore[assignment]
    elif native_crop:
        dataset = NativeImageDataset(split)
    else:
        dataset = TensorImageDataset(split)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        drop_last=False,
        collate_fn=collate_batch,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
