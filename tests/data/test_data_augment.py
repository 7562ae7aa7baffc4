"""Batch augmentation: shapes kept, flips about half, crops are shifts, global RNG drives it."""

from __future__ import annotations

import torch

from realfake.data import normalize, random_crop, random_flip
from realfake.data.augment import channel_stats


def _batch(n: int = 256, size: int = 8) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0)
    ).float()


def test_flip_mirrors_about_half_and_keeps_shape() -> None:
    x = _batch()
    torch.manual_seed(1)
    y = random_flip(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    flipped = torch.tensor([torch.equal(a.flip(-1), b) for a, b in zip(x, y, strict=True)])
    same = torch.tensor([torch.equal(a, b) for a, b in zip(x, y, strict=True)])
    assert bool((flipped | same).all())
    assert 90 < int(flipped.sum()) < 166  # Binomial(256, 0.5): mean 128, sd 8


def test_crop_is_a_per_image_shift_of_the_input() -> None:
    x = _batch(64, 10)
    torch.manual_seed(2)
    y = random_crop(x, 3)
    assert y.shape == x.shape and y.dtype == x.dtype
    shifts = set()
    for a, b in zip(x, y, strict=True):
        # Some shift (dy, dx) gives b[:, i, j] == a[:, i + dy, j + dx] wherever that pixel lies
        # inside a (the rest is reflected border).
        found = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if torch.equal(b[:, max(0, -dy) : 10 - max(0, dy), max(0, -dx) : 10 - max(0, dx)],
                           a[:, max(0, dy) : 10 + min(0, dy), max(0, dx) : 10 + min(0, dx)])
        ]  # fmt: skip
        assert found, "output is not a shifted copy of the input"
        shifts.add(found[0])
    assert len(shifts) > 10  # offsets differ per image
    assert torch.equal(random_crop(x, 0), x)


def test_global_rng_makes_augmentation_reproducible() -> None:
    x = _batch(32)
    torch.manual_seed(7)
    a = random_crop(random_flip(x), 2)
    torch.manual_seed(7)
    b = random_crop(random_flip(x), 2)
    assert torch.equal(a, b)


def test_uint8_crop_and_large_padding() -> None:
    x = torch.randint(0, 256, (4, 3, 4, 4), dtype=torch.uint8)
    y = random_crop(x, 6)  # padding beyond the image: zero padding
    assert y.shape == x.shape and y.dtype == torch.uint8


def test_normalize_and_channel_stats() -> None:
    x = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    x[:5] = 255
    x[:, 1] = 51  # channel 1 is constant 0.2
    mean, std = channel_stats(x)
    assert abs(mean[0] - 0.5) < 1e-9 and abs(std[0] - 0.5) < 1e-9
    assert abs(mean[1] - 0.2) < 1e-9 and std[1] < 1e-5
    out = normalize(x, (0.5, 0.0, 0.5), (0.5, 1.0, 0.5))
    assert out.dtype == torch.float32
    assert out[0, 0].unique().tolist() == [1.0] and out[9, 0].unique().tolist() == [-1.0]
    assert torch.allclose(out[:, 1], torch.full_like(out[:, 1], 0.2))
