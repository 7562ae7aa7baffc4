"""Batch augmentation: shapes kept, flips about half, crops are shifts, seeded RNG drives it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from realfake.data.augment import (
    channel_stats,
    normalize,
    random_crop,
    random_flip,
    random_flip_crop,
)


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


def test_a_generator_draws_what_the_global_generator_would() -> None:
    x = _batch(32)
    torch.manual_seed(7)
    expected = random_flip_crop(x, 2)
    for _ in range(2):  # the same seed, the same batch
        assert torch.equal(
            random_flip_crop(x, 2, generator=torch.Generator().manual_seed(7)), expected
        )


def test_uint8_crop_and_large_padding() -> None:
    x = torch.randint(1, 256, (64, 3, 4, 4), dtype=torch.uint8)
    y = random_crop(x, 6)  # padding beyond the image: zero padding
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert bool((y == 0).any())  # some windows fall on the zero border...
    assert set(y[y > 0].unique().tolist()) <= set(x.unique().tolist())  # ...the rest is x


def test_flip_crop_in_one_gather_equals_flipping_padding_and_slicing_each_image() -> None:
    """The fused gather against the obvious per-image version, with the same random draws."""
    x8 = torch.randint(0, 256, (32, 3, 10, 7), dtype=torch.uint8)
    pad = 3
    torch.manual_seed(11)
    flips = torch.rand(32) < 0.5  # the draws random_flip_crop makes, in its order
    dy, dx = torch.randint(0, 2 * pad + 1, (32,)), torch.randint(0, 2 * pad + 1, (32,))
    expected = []
    for i in range(32):
        image = x8[i].float().flip(-1) if flips[i] else x8[i].float()
        padded = F.pad(image[None], (pad,) * 4, mode="reflect")[0]
        expected.append(padded[:, dy[i] : dy[i] + 10, dx[i] : dx[i] + 7])
    expected = torch.stack(expected)
    for x in (x8, x8.float() / 255):
        torch.manual_seed(11)
        fused = random_flip_crop(x, pad)
        assert fused.dtype == x.dtype
        scale = 1 if x.dtype == torch.uint8 else 255
        assert torch.allclose(fused.float() * scale, expected, atol=1e-4)
        torch.manual_seed(11)  # the same batch as flipping, then cropping
        assert torch.equal(fused, random_crop(random_flip(x), pad))


def test_normalize_of_uint8_equals_normalize_of_unit_floats() -> None:
    x = torch.randint(0, 256, (8, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    assert torch.allclose(normalize(x, mean, std), ref, atol=1e-5)
    unit = x.float() / 255
    assert torch.allclose(normalize(unit, mean, std), ref, atol=1e-5)
    assert torch.equal(unit, x.float() / 255)  # the input is not modified in place


def test_normalize_and_channel_stats() -> None:
    x = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    x[:5] = 255
    x[:, 1] = 51  # channel 1 is constant 0.2
    mean, std = channel_stats(x)
    assert abs(mean[0] - 0.5) < 1e-9 and abs(std[0] - 0.5) < 1e-9
    assert abs(mean[1] - 0.2) < 1e-9 and std[1] < 1e-5
    out = normalize(x, (0.5, 0.0, 0.5), (0.5, 1.0, 0.5))
    assert out.dtype == torch.float32
    # One fused multiply-add in float32: equal to (x/255 - mean)/std within rounding.
    assert torch.allclose(out[:5, 0], torch.ones_like(out[:5, 0]), atol=1e-6)
    assert torch.allclose(out[5:, 0], -torch.ones_like(out[5:, 0]), atol=1e-6)
    assert torch.allclose(out[:, 1], torch.full_like(out[:, 1], 0.2))
