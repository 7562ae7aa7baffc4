"""data.augment.flip_mode=alternate: every image shown once each way in every two epochs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from realfake.data.batches import EpochShuffleSampler, TensorImageDataset
from realfake.data.config import AugmentConfig, DataConfig
from realfake.errors import ConfigError
from realfake.train.datamodule import ImageDataModule


def mirrored_set(dm: ImageDataModule, epoch: int) -> set[int]:
    """Which training images (by index) the network sees mirrored in ``epoch``."""
    dm.trainer = SimpleNamespace(training=True, current_epoch=epoch)  # type: ignore[assignment]
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    plain = {bytes(img.numpy()): i for i, img in enumerate(dm.train_split.images)}
    flipped = {bytes(img.flip(-1).numpy()): i for i, img in enumerate(dm.train_split.images)}
    out, count = set(), 0
    for images, _ in loader:
        for shown in dm.augment(images):
            key = bytes(shown.numpy())
            count += 1
            if key in flipped and key not in plain:
                out.add(flipped[key])
            else:
                assert key in plain  # shown unchanged (no crop in this config)
    assert count == len(dm.train_split)
    return out


@pytest.fixture
def alternating(shared_cache: Path) -> ImageDataModule:
    augment = AugmentConfig(crop_padding=0, flip_mode="alternate")
    dm = ImageDataModule(DataConfig(cache_dir=str(shared_cache), augment=augment), seed=3)
    dm.setup("fit")
    return dm


def test_each_image_is_shown_both_ways_over_two_epochs(alternating: ImageDataModule) -> None:
    n = len(alternating.train_split)
    epochs = [mirrored_set(alternating, e) for e in range(3)]
    assert 0.4 * n < len(epochs[0]) < 0.6 * n  # a random half first
    assert epochs[1] == set(range(n)) - epochs[0]  # then exactly the other half
    assert epochs[2] == epochs[0]


def test_random_mode_flips_independently_each_epoch(shared_cache: Path) -> None:
    augment = AugmentConfig(crop_padding=0)
    dm = ImageDataModule(DataConfig(cache_dir=str(shared_cache), augment=augment), seed=3)
    dm.setup("fit")
    first, second = mirrored_set(dm, 0), mirrored_set(dm, 1)
    assert first & second and second != set(range(len(dm.train_split))) - first


def test_mirrored_index_reads_the_mirrored_image(alternating: ImageDataModule) -> None:
    split = alternating.train_split
    dataset, n = TensorImageDataset(split), len(split)
    images, labels = dataset.__getitems__([0, n + 0, n + 5])
    assert torch.equal(images[0], split.images[0])
    assert torch.equal(images[1], split.images[0].flip(-1))
    assert torch.equal(images[2], split.images[5].flip(-1))
    assert labels.tolist() == [split.labels[0], split.labels[0], split.labels[5]]
    assert torch.equal(split.images[0], dataset.images[0])  # the split itself is untouched
    with pytest.raises(IndexError):
        dataset.__getitems__([2 * n])  # past the mirrored range: an error, not a wrap-around


def test_sampler_shards_the_same_flips() -> None:
    whole = EpochShuffleSampler(10, seed=1, alternate_flips=True)
    shards = [
        EpochShuffleSampler(10, seed=1, rank=rank, world=2, alternate_flips=True) for rank in (0, 1)
    ]
    assert sorted(list(shards[0]) + list(shards[1])) == sorted(whole)
    assert sorted(i % 10 for i in whole) == list(range(10))


def test_unknown_flip_mode_is_named() -> None:
    with pytest.raises(ConfigError, match=r"augment\.flip_mode.*random or alternate"):
        AugmentConfig(flip_mode="sometimes")
