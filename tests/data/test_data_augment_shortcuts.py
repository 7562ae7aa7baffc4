"""SAFE's augmentations against shortcuts: right-angle rotation, colour jitter, patch masking."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from realfake.data.augment import random_colour_jitter, random_patch_mask, random_rotate90
from realfake.data.perturbations import brightness, contrast
from realfake.models.residuals import NeighbourResidual


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(n: int = 64, size: int = 16, low: int = 0) -> torch.Tensor:
    return torch.randint(low, 256, (n, 3, size, size), dtype=torch.uint8, generator=_gen(0))


def _quarter_turns(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """For each image, the k for which ``after`` is ``before`` turned k times (-1: none)."""
    turns = []
    for a, b in zip(before, after, strict=True):
        found = [k for k in range(4) if torch.equal(torch.rot90(a, k, dims=(-2, -1)), b)]
        turns.append(found[0] if found else -1)
    return turns


AUGMENTS = {
    "rotate90": lambda x, p, g: random_rotate90(x, p, g),
    "colour_jitter": lambda x, p, g: random_colour_jitter(x, p, generator=g),
    "patch_mask": lambda x, p, g: random_patch_mask(x, p, generator=g),
}


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_p_zero_leaves_the_batch_bit_identical(name: str) -> None:
    x = _batch(size=32)
    before = x.clone()
    out = AUGMENTS[name](x, 0.0, _gen(1))
    assert torch.equal(out, x) and out.dtype == x.dtype
    assert torch.equal(AUGMENTS[name](x, 1.0, _gen(1)), AUGMENTS[name](x, 1.0, _gen(1)))
    assert not torch.equal(AUGMENTS[name](x, 1.0, _gen(1)), x)
    assert torch.equal(x, before)  # the input is left alone


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_random_stream_does_not_depend_on_the_picks(name: str) -> None:
    few, many = _gen(2), _gen(2)
    AUGMENTS[name](_batch(size=32), 0.1, few)
    AUGMENTS[name](_batch(size=32), 0.9, many)
    assert torch.equal(few.get_state(), many.get_state())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_rotation_is_an_exact_quarter_turn_of_the_picked_images(dtype: torch.dtype) -> None:
    x = _batch(n=300, size=6).to(dtype)
    out = random_rotate90(x, 0.75, _gen(3))
    assert out.shape == x.shape and out.dtype == dtype
    turns = torch.tensor(_quarter_turns(x, out))
    assert bool((turns >= 0).all()), "an image is not a rotation of its input"
    picked = torch.rand(300, generator=_gen(3)) < 0.75  # the draws replayed: picks first
    assert bool((turns[~picked] == 0).all()) and bool((turns[picked] > 0).all())
    # p = 0.75: each of the four right angles about a quarter of the time (sd ≈ 7.5 of 75).
    counts = torch.bincount(turns, minlength=4)
    assert bool((counts > 50).all()) and bool((counts < 100).all()), counts


def test_rotation_refuses_non_square_images() -> None:
    with pytest.raises(ValueError, match="square images, got 8×6"):
        random_rotate90(torch.zeros(2, 3, 8, 6), 0.5)


def test_right_angles_keep_the_upsampling_trace_that_other_angles_destroy() -> None:
    """Why right angles: pixels a 2× up-sampling repeated have zero NPR after any quarter turn;
    a 30° rotation (SAFE's up to 180°) resamples them into a natural-looking residual."""
    small = _batch(n=32, size=16).float()
    generated = F.interpolate(small, scale_factor=2.0, mode="nearest")
    npr = NeighbourResidual(3, scale=1.0)
    assert torch.count_nonzero(npr(generated)) == 0
    turned = random_rotate90(generated, 1.0, _gen(4))
    assert torch.count_nonzero(npr(turned)) == 0
    native = npr(small).abs().mean()  # an image never up-sampled
    tilted = TF.rotate(generated, 30.0)  # torchvision's RandomRotation default: nearest
    centre = npr(tilted)[..., 8:24, 8:24]  # clear of the black corners
    assert centre.abs().mean() > 0.5 * native


def test_colour_jitter_is_brightness_contrast_then_saturation_with_replayed_factors() -> None:
    x = _batch(n=16, size=8)
    out = random_colour_jitter(x, 0.5, 0.5, 0.4, 0.3, _gen(5))
    assert out.dtype == torch.uint8
    g = _gen(5)
    picked = torch.rand(16, generator=g) < 0.5
    factors = [
        torch.where(picked, low + (high - low) * torch.rand(16, generator=g), 1.0)
        for low, high in ((0.5, 1.5), (0.6, 1.4), (0.7, 1.3))
    ]
    expected = contrast(brightness(x, factors[0]), factors[1])
    for i in range(16):
        # torchvision's adjust_saturation, image by image, is the reference for the last step.
        expected[i] = TF.adjust_saturation(expected[i], float(factors[2][i]))
    assert torch.equal(out, expected)
    changed = (out != x).flatten(1).any(1)
    assert torch.equal(changed, picked)


def test_saturation_below_one_moves_colours_towards_grey() -> None:
    x = _batch(n=8, size=8)
    # Brightness and contrast fixed at 1 (changes of 0), saturation ~ U[0, 2].
    out = random_colour_jitter(x, 1.0, 0.0, 0.0, 1.0, _gen(6))
    g = _gen(6)
    for _ in range(3):  # the picks, then the brightness and contrast factors
        torch.rand(8, generator=g)
    factor = 2.0 * torch.rand(8, generator=g)
    spread = out.float().std(dim=1).mean(dim=(-2, -1))  # between R, G and B, per image
    before = x.float().std(dim=1).mean(dim=(-2, -1))
    assert torch.equal(spread < before, factor < 1)
    assert bool((factor < 1).any()) and bool((factor > 1).any())


def _zero_patches(out: torch.Tensor, patch: int) -> torch.Tensor:
    """Per image, how many patch×patch tiles of the top-left grid are entirely 0."""
    n, c, h, w = out.shape
    tiles = out[..., : h // patch * patch, : w // patch * patch]
    tiles = tiles.reshape(n, c, h // patch, patch, w // patch, patch)
    return (tiles == 0).all(dim=5).all(dim=3).all(dim=1).flatten(1).sum(1)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_masking_zeroes_the_stated_fraction_of_patches(dtype: torch.dtype) -> None:
    x = _batch(n=32, size=64, low=1).to(dtype)  # no zero pixel before masking
    out = random_patch_mask(x, 1.0, (0.5, 0.5), 16, _gen(7))
    assert out.dtype == dtype
    assert bool((_zero_patches(out, 16) == 8).all())  # half of the 4×4 grid, every image
    zeros = out == 0
    assert int(zeros.sum()) == 32 * 8 * 3 * 16 * 16  # nothing else was touched...
    assert torch.equal(out[~zeros], x[~zeros])  # ...and the rest is the input
    # The masked patches differ between images.
    assert len({tuple(m.flatten().tolist()) for m in zeros[:, 0, ::16, ::16]}) > 20


def test_masking_follows_safe_p_and_fraction() -> None:
    x = _batch(n=400, size=64, low=1)
    out = random_patch_mask(x, 0.5, (0.0, 0.75), 16, _gen(8))
    masked = _zero_patches(out, 16)
    picked = torch.rand(400, generator=_gen(8)) < 0.5
    assert bool((masked[~picked] == 0).all())
    assert int(masked.max()) <= 12  # floor(0.75 · 16)
    # f ~ U[0, 0.75]: floor(16 f) averages about 5.5 patches over the picked images.
    assert 4.5 < masked[picked].float().mean() < 6.5
    assert 150 < int(picked.sum()) < 250


def test_masking_leaves_the_strip_beyond_whole_patches() -> None:
    x = _batch(n=16, size=40, low=1)  # 2×2 whole 16 px patches and an 8 px strip
    out = random_patch_mask(x, 1.0, (1.0, 1.0), 16, _gen(9))
    assert int((out[..., :32, :32] == 0).sum()) == 16 * 3 * 32 * 32
    assert torch.equal(out[..., 32:, :], x[..., 32:, :])
    assert torch.equal(out[..., :, 32:], x[..., :, 32:])
