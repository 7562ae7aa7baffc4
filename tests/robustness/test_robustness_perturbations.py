"""Every perturbation: shape and dtype kept, seeded, input untouched, identity levels a no-op,
per-image levels as each level alone, milder < stronger."""

from __future__ import annotations

import pytest
import torch

from realfake.data.loader import load_images
from realfake.data.perturbations import (
    KINDS,
    Perturbation,
    blur,
    default_grid,
    parse_grid,
    parse_perturbation,
)
from realfake.errors import ConfigError

# Five levels per kind, one per image: the identity first (JPEG has none; 100 still re-encodes).
PER_IMAGE = {
    "jpeg": [100, 90, 75, 50, 30],
    "blur": [0, 0.3, 1, 1.5, 2.5],
    "noise": [0, 0.01, 0.02, 0.05, 0.1],
    "resize": [1, 0.9, 0.75, 0.5, 0.3],
    "brightness": [1, 0.5, 0.9, 1.1, 1.5],
    "contrast": [1, 0.5, 0.9, 1.1, 1.5],
    "crop": [1, 0.9, 0.8, 0.6, 0.5],
}


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """32 real CIFAKE images (uint8 N×3×32×32): smooth regions and edges, unlike noise."""
    return load_images(None, 32).splits["test"].images[::6][:32].clone()


def _change(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_level_keeps_shape_dtype_and_leaves_input_alone(
    kind: str, photos: torch.Tensor
) -> None:
    before = photos.clone()
    for p in default_grid([kind]):
        out = p(photos, seed=3)
        assert out.shape == photos.shape and out.dtype == torch.uint8, p.name
        assert torch.equal(photos, before), f"{p.name} modified its input"
        assert torch.equal(out, p(photos, seed=3)), f"{p.name} is not deterministic"
        assert out.device == photos.device


@pytest.mark.parametrize("kind", list(KINDS))
def test_mildest_level_changes_little_and_strongest_more(kind: str, photos: torch.Tensor) -> None:
    levels = sorted(default_grid([kind]), key=lambda p: p.severity)
    mild, strong = _change(photos, levels[0](photos)), _change(photos, levels[-1](photos))
    # Mean absolute change in 0-255 levels; cropping moves every edge, hence the loose bound.
    assert 0 < mild < 20, f"{levels[0].name} changed pixels by {mild:.2f} on average"
    assert strong > mild, f"{levels[-1].name} ({strong:.2f}) not stronger than {levels[0].name}"


def test_table_covers_every_kind() -> None:
    assert set(PER_IMAGE) == set(KINDS)


@pytest.mark.parametrize("kind", list(KINDS))
def test_identity_level_changes_nothing_and_others_change_every_image(
    kind: str, photos: torch.Tensor
) -> None:
    spec, x = KINDS[kind], photos[:4]
    same = spec.fn(x, spec.identity, torch.Generator().manual_seed(0))
    if kind == "jpeg":  # no identity: 4:2:0 chroma subsampling changes pixels even at 100
        assert 0 < _change(x, same) < 3
    else:
        assert torch.equal(same, x)
    for level in PER_IMAGE[kind][1:]:
        out = spec.fn(x, level, torch.Generator().manual_seed(0))
        assert all(not torch.equal(a, b) for a, b in zip(out, x, strict=True)), (kind, level)


@pytest.mark.parametrize("kind", list(KINDS))
def test_per_image_levels_equal_each_level_alone(kind: str, photos: torch.Tensor) -> None:
    """Image i under levels[i] in one call = image i under that level for the whole batch."""
    levels, fn = PER_IMAGE[kind], KINDS[kind].fn
    x = photos[: len(levels)]
    out = fn(x, torch.tensor(levels), torch.Generator().manual_seed(4))
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i, level in enumerate(levels):
        alone = fn(x, level, torch.Generator().manual_seed(4))  # the same noise draw
        assert torch.equal(out[i], alone[i]), (kind, level)
        if kind != "noise":  # deterministic kinds: also as the image alone
            assert torch.equal(out[i], fn(x[i : i + 1], level, None)[0]), (kind, level)
    with pytest.raises(ValueError, match="levels for"):
        fn(x, torch.tensor(levels[:2]), None)


def test_grid_blur_is_the_shared_blur_in_pixels_of_the_image(photos: torch.Tensor) -> None:
    x = photos[:4]
    assert torch.equal(parse_perturbation("blur:1")(x), blur(x, 1.0))
    assert torch.equal(blur(x, torch.ones(4)), blur(x, 1.0))
    # σ in pixels of the image at any size: blurring a 2×-upscaled image by 2σ and shrinking
    # it back is close to blurring the image by σ.
    big = torch.nn.functional.interpolate(x.float(), scale_factor=2, mode="nearest").byte()
    back = torch.nn.functional.avg_pool2d(blur(big, 2.0).float(), 2)
    assert _change(back, blur(x, 1.0)) < _change(blur(x, 2.0), blur(x, 1.0)) / 2


def test_noise_depends_on_the_seed_and_on_nothing_else(photos: torch.Tensor) -> None:
    p = parse_perturbation("noise:0.05")
    assert not torch.equal(p(photos, seed=0), p(photos, seed=1))
    # Deterministic kinds ignore the seed.
    q = parse_perturbation("blur:1")
    assert torch.equal(q(photos, seed=0), q(photos, seed=1))


def test_levels_mean_what_they_say(photos: torch.Tensor) -> None:
    flat = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    assert torch.equal(parse_perturbation("brightness:1.5")(flat), torch.full_like(flat, 150))
    assert torch.equal(parse_perturbation("blur:2")(flat), flat)  # blur keeps a flat image
    # Grey stays grey (torchvision's grey level is rounded down: off by at most one).
    assert _change(parse_perturbation("contrast:0.5")(flat), flat) <= 1
    # JPEG at quality 75 of CIFAKE's own quality-75 files is nearly idempotent; 30 is not.
    assert _change(photos, parse_perturbation("jpeg:75")(photos)) < _change(
        photos, parse_perturbation("jpeg:30")(photos)
    )


def test_parse_names_levels_and_lists() -> None:
    assert parse_perturbation("jpeg:50") == Perturbation("jpeg", 50.0)
    assert parse_perturbation(" Blur:1 ").name == "blur:1"
    assert [p.name for p in parse_grid("jpeg:50,noise")] == [
        "jpeg:50",
        "noise:0.02",
        "noise:0.05",
        "noise:0.1",
    ]
    assert len(parse_grid(None)) == sum(len(k.levels) for k in KINDS.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sharpen:2", r"unknown kind 'sharpen'.*Known kinds: jpeg .*blur .*crop"),
        ("jpeg", r"no level"),
        ("jpeg:high", r"level 'high' is not a number; expected an integer in \[1, 100\]"),
        ("jpeg:150", r"out of range; expected an integer in \[1, 100\]"),
        ("jpeg:50.5", r"out of range; expected an integer"),
        ("resize:1.5", r"expected a number in \(0, 1\]"),
        ("blur:0", r"out of range"),
    ],
)
def test_bad_specs_say_what_would_be_right(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_perturbation(text)


def test_batches_must_be_uint8_images() -> None:
    with pytest.raises(ValueError, match="uint8 images"):
        parse_perturbation("blur:1")(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8 images"):
        blur(torch.zeros(2, 3, 8, 8), 1.0)
