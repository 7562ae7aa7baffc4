"""Robust-training augmentation: the degradation options of AugmentConfig (blur, JPEG, noise,
resizing, zoom, brightness, contrast)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from realfake.data.augment import (
    random_blur,
    random_brightness,
    random_contrast,
    random_flip_crop,
    random_jpeg,
    random_noise,
    random_resize,
    random_zoom,
)
from realfake.data.config import AugmentConfig, DataConfig
from realfake.data.loader import load_images
from realfake.data.perturbations import (
    Perturbation,
    blur,
    brightness,
    contrast,
    crop,
    jpeg,
    noise,
    parse_perturbation,
    resize,
)
from realfake.errors import ConfigError
from realfake.train.datamodule import ImageDataModule, batch_seed

# name: (the augmentation at p, the shared perturbation, its level draw after the picks)
AUGMENTS = {
    "blur": (
        lambda x, p, g: random_blur(x, p, 2.0, g),
        blur,
        lambda g, n: torch.rand(n, generator=g) * 2.0,
    ),
    "jpeg": (
        lambda x, p, g: random_jpeg(x, p, 30, 90, g),
        jpeg,
        lambda g, n: torch.randint(30, 91, (n,), generator=g),
    ),
    "noise": (
        lambda x, p, g: random_noise(x, p, 0.1, g),
        noise,
        lambda g, n: torch.rand(n, generator=g) * 0.1,
    ),
    "resize": (
        lambda x, p, g: random_resize(x, p, 0.5, g),
        resize,
        lambda g, n: 0.5 + 0.5 * torch.rand(n, generator=g),
    ),
    "zoom": (
        lambda x, p, g: random_zoom(x, p, 0.7, g),
        crop,
        lambda g, n: 0.7 + 0.3 * torch.rand(n, generator=g),
    ),
    "brightness": (
        lambda x, p, g: random_brightness(x, p, 0.4, g),
        brightness,
        lambda g, n: 0.6 + 0.8 * torch.rand(n, generator=g),
    ),
    "contrast": (
        lambda x, p, g: random_contrast(x, p, 0.4, g),
        contrast,
        lambda g, n: 0.6 + 0.8 * torch.rand(n, generator=g),
    ),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """16 real CIFAKE images, uint8 N×3×32×32 as ImageDataModule.augment receives them."""
    return load_images(None, 32).splits["train"].images[:16].clone()


def _changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a != b).flatten(1).any(1)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("name", list(AUGMENTS))
def test_degradation_is_the_shared_perturbation_of_the_picked_images(
    name: str, p: float, batch: torch.Tensor
) -> None:
    augment, shared, draw = AUGMENTS[name]
    before = batch.clone()
    out = augment(batch, p, _gen(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert torch.equal(batch, before)  # the input is left alone
    assert torch.equal(augment(batch, p, _gen(0)), out)  # the same seed, the same batch
    # The draws replayed: which images, then one level per image (noise then draws its noise).
    g = _gen(0)
    pick = torch.rand(16, generator=g) < p
    whole = shared(batch, draw(g, 16), g)
    assert torch.equal(out, torch.where(pick.view(-1, 1, 1, 1), whole, batch))
    changed = _changed(out, batch)
    assert not bool((changed & ~pick).any())
    if p == 0:
        assert not bool(changed.any())
    if p == 1:
        # Every image is degraded; a weak draw may still leave a uint8 image as it was (σ near
        # 0, a scale that rounds back to 32 px, a CIFAKE JPEG re-encoded at its own quality).
        assert int(changed.sum()) >= 14


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_random_stream_does_not_depend_on_the_picks(name: str, batch: torch.Tensor) -> None:
    few, many = _gen(2), _gen(2)
    augment = AUGMENTS[name][0]
    augment(batch, 0.1, few)
    augment(batch, 0.9, many)
    assert torch.equal(few.get_state(), many.get_state())


def test_training_blur_is_the_grid_blur(batch: torch.Tensor) -> None:
    """The same function and unit (σ in pixels of the image) for training and the grid."""
    x = batch[:4]
    out = random_blur(x, 1.0, 2.0, _gen(3))
    replay = _gen(3)
    torch.rand(4, generator=replay)  # the picks
    sigma = torch.rand(4, generator=replay) * 2.0
    for i in range(4):
        assert torch.equal(out[i], Perturbation("blur", float(sigma[i]))(x[i : i + 1])[0])
    # Training's blur at σ = 1 for every image is the grid's blur:1, pixel for pixel.
    assert torch.equal(blur(x, torch.ones(4)), parse_perturbation("blur:1")(x))


def _module(tmp_cache: Path, **augment: float) -> ImageDataModule:
    cfg = DataConfig(cache_dir=str(tmp_cache), augment=AugmentConfig(**augment))
    return ImageDataModule(cfg)


def test_datamodule_degrades_after_flip_and_crop_from_one_generator(
    batch: torch.Tensor, data_cache: Path
) -> None:
    x = F.interpolate(batch.float(), scale_factor=2, mode="nearest").byte()  # 64 px
    expected = random_flip_crop(x, 8, 0.5, _gen(5))  # padding 4 at 32 px
    # Switched off (the default), the degradations draw nothing: flips and crops as before.
    assert torch.equal(_module(data_cache).augment(x, _gen(5)), expected)
    options = {"blur_prob": 0.5, "jpeg_prob": 0.5, "noise_prob": 0.5, "resize_prob": 0.5}
    out = _module(data_cache, **options, blur_sigma_max=1.5).augment(x, _gen(5))
    assert out.shape == x.shape and out.dtype == torch.uint8
    # The same draws by hand, from the same generator: blur σ in pixels of the 64 px image
    # (not scaled by 64/32), noise σ and resize factor at their defaults.
    g = _gen(5)
    y = random_flip_crop(x, 8, 0.5, g)
    y = random_jpeg(random_noise(random_blur(random_resize(y, 0.5, 0.5, g), 0.5, 1.5, g),
                                 0.5, 0.05, g), 0.5, 30, 100, g)  # fmt: skip
    assert torch.equal(out, y)
    assert int(_changed(out, expected).sum()) >= 12  # 1 - 0.5^4 of 16 images, about 15


def test_datamodule_zooms_then_adjusts_exposure_before_blur(
    batch: torch.Tensor, data_cache: Path
) -> None:
    """The camera-to-upload order: zoom, resize, brightness, contrast, blur, noise, JPEG."""
    options = {
        f"{name}_prob": 0.5
        for name in ("zoom", "resize", "brightness", "contrast", "blur", "noise", "jpeg")
    }
    out = _module(data_cache, **options).augment(batch, _gen(6))
    g = _gen(6)
    y = random_flip_crop(batch, 4, 0.5, g)
    for step in (
        lambda y: random_zoom(y, 0.5, 0.8, g),
        lambda y: random_resize(y, 0.5, 0.5, g),
        lambda y: random_brightness(y, 0.5, 0.3, g),
        lambda y: random_contrast(y, 0.5, 0.3, g),
        lambda y: random_blur(y, 0.5, 1.0, g),
        lambda y: random_noise(y, 0.5, 0.05, g),
        lambda y: random_jpeg(y, 0.5, 30, 100, g),
    ):
        y = step(y)
    assert torch.equal(out, y)


def test_datamodule_applies_safes_augmentations_in_order(
    batch: torch.Tensor, data_cache: Path
) -> None:
    """Rotation and colour jitter after flip and crop, patch masking last, one generator;
    switched off they draw nothing (the plain flip-crop batch above)."""
    from realfake.data.augment import random_colour_jitter, random_patch_mask, random_rotate90

    options = {"rotate90_prob": 0.75, "jitter_prob": 0.5, "mask_prob": 0.5, "jpeg_prob": 0.5}
    out = _module(data_cache, **options).augment(batch, _gen(7))
    g = _gen(7)
    y = random_flip_crop(batch, 4, 0.5, g)
    y = random_rotate90(y, 0.75, g)
    y = random_colour_jitter(y, 0.5, 0.5, 0.5, 0.5, g)
    y = random_jpeg(y, 0.5, 30, 100, g)
    y = random_patch_mask(y, 0.5, (0.0, 0.75), 2, g)  # 16 px at 256 px is 2 px at 32 px
    assert torch.equal(out, y)
    assert int(_changed(out, random_flip_crop(batch, 4, 0.5, _gen(7))).sum()) >= 12


def test_training_batches_draw_from_their_own_seed_only(
    batch: torch.Tensor, data_cache: Path
) -> None:
    dm = _module(data_cache, blur_prob=0.5, noise_prob=0.5)
    dm.normalize = lambda x: x  # type: ignore[method-assign]  # the augmentation alone
    dm.trainer = SimpleNamespace(training=True, current_epoch=2)  # type: ignore[assignment]
    state = torch.get_rng_state()
    first, _ = dm.on_after_batch_transfer((batch, None), 0)
    second, _ = dm.on_after_batch_transfer((batch, None), 0)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not touched
    assert torch.equal(first, dm.augment(batch, _gen(batch_seed(0, 2, 0))))
    assert torch.equal(second, dm.augment(batch, _gen(batch_seed(0, 2, 1))))
    assert not torch.equal(first, second)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("blur_prob", 1.5),
        ("jpeg_prob", -0.1),
        ("noise_prob", 2.0),
        ("resize_prob", -1.0),
        ("blur_sigma_max", 0.0),
        ("noise_sigma_max", -0.1),
        ("jpeg_quality_min", 0),
        ("jpeg_quality_max", 101),
        ("resize_scale_min", 0.0),
        ("resize_scale_min", 1.5),
        ("zoom_prob", 1.1),
        ("brightness_prob", -0.5),
        ("contrast_prob", 3.0),
        ("zoom_fraction_min", 0.0),
        ("brightness_max_change", 1.0),
        ("contrast_max_change", 0.0),
    ],
)
def test_bad_values_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"augment\.{field}"):
        AugmentConfig(**{field: value})


def test_quality_range_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match=r"augment\.jpeg_quality_max.*jpeg_quality_min=80"):
        AugmentConfig(jpeg_quality_min=80, jpeg_quality_max=50)


def test_robust_experiment_and_study_compose() -> None:
    from realfake.data.perturbations import KINDS
    from realfake.studies.study import load_study
    from realfake.train import compose

    cfg = compose(["experiment=demo", "experiment=robust"])
    aug = cfg.data.augment
    kinds = ("zoom", "resize", "brightness", "contrast", "blur", "noise", "jpeg")
    assert all(aug[f"{kind}_prob"] == 0.05 for kind in kinds)
    assert cfg.data.batch_size == 32  # the demo recipe underneath
    # The ranges cover every level of the default grid.
    grid = {kind: KINDS[kind].levels for kind in KINDS}
    assert aug.blur_sigma_max >= max(grid["blur"]) and aug.noise_sigma_max >= max(grid["noise"])
    assert aug.resize_scale_min <= min(grid["resize"])
    assert aug.zoom_fraction_min <= min(grid["crop"])
    assert aug.jpeg_quality_min <= min(grid["jpeg"])
    for kind in ("brightness", "contrast"):
        change = aug[f"{kind}_max_change"]
        assert 1 - change <= min(grid[kind]) and 1 + change >= max(grid[kind])
    study = load_study("robust_training")
    assert {"clean", "cnndetection", "robust"} == set(study.arms)
    for overrides in study.arms.values():
        compose([*study.common, *overrides])  # every arm is a valid config
    cnn = compose([*study.common, *study.arms["cnndetection"]]).data.augment
    assert (cnn.blur_prob, cnn.jpeg_prob, cnn.noise_prob, cnn.zoom_prob) == (0.5, 0.5, 0.0, 0.0)
