"""Robust-training augmentation: blur, JPEG, noise and resizing options of AugmentConfig."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from realfake.data import AugmentConfig, DataConfig, ImageDataModule, load_images
from realfake.data.augment import (
    random_blur,
    random_crop,
    random_flip,
    random_jpeg,
    random_noise,
    random_resize,
)
from realfake.errors import ConfigError

AUGMENTS = {
    "blur": lambda x, p: random_blur(x, p, 1.5),
    "jpeg": lambda x, p: random_jpeg(x, p, 30, 100),
    "noise": lambda x, p: random_noise(x, p, 0.1),
    "resize": lambda x, p: random_resize(x, p, 0.5),
}


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """64 real CIFAKE images as a [0, 1] float batch, as ImageDataModule.augment receives."""
    return load_images(None, 32).splits["train"].images[:64].float() / 255


def _changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).amax(1) > 1e-6


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_degradation_picks_about_p_of_the_images(name: str, batch: torch.Tensor) -> None:
    fn = AUGMENTS[name]
    torch.manual_seed(0)
    out = fn(batch, 0.5)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # Binomial(64, 0.5); a picked image may come out unchanged (σ or shrink drawn near zero).
    assert 16 <= int(_changed(out, batch).sum()) <= 48
    torch.manual_seed(0)
    assert torch.equal(fn(batch, 0.5), out)  # the global RNG drives it
    assert torch.equal(fn(batch, 0.0), batch)
    assert int(_changed(fn(batch, 1.0), batch).sum()) >= 56


def test_blur_smooths_and_jpeg_matches_the_codec(batch: torch.Tensor) -> None:
    torch.manual_seed(1)
    blurred = random_blur(batch, 1.0, 2.0)
    # Blur lowers the local variation (differences between neighbouring pixels).
    grad = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert grad(blurred) < 0.8 * grad(batch)
    coded = random_jpeg(batch, 1.0, 90, 90)
    assert torch.allclose(coded * 255, (coded * 255).round(), atol=1e-3)  # uint8 levels


def _module(tmp_cache: Path, **augment: float) -> ImageDataModule:
    cfg = DataConfig(cache_dir=str(tmp_cache), augment=AugmentConfig(**augment))
    return ImageDataModule(cfg)


def test_datamodule_applies_the_options_and_keeps_old_runs_unchanged(
    batch: torch.Tensor, data_cache: Path
) -> None:
    plain = _module(data_cache)
    torch.manual_seed(5)
    expected = random_crop(random_flip(batch), 4)
    torch.manual_seed(5)
    # Switched off (the default), the new options draw nothing: flips and crops as before.
    assert torch.equal(plain.augment(batch), expected)
    robust = _module(data_cache, blur_prob=0.5, jpeg_prob=0.5, noise_prob=0.5, resize_prob=0.5)
    torch.manual_seed(5)
    out = robust.augment(batch)
    assert out.shape == batch.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert int(_changed(out, expected).sum()) > 48  # 1 - 0.5^4 of the images, about 60


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
    ],
)
def test_bad_values_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"augment\.{field}"):
        AugmentConfig(**{field: value})


def test_quality_range_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match=r"augment\.jpeg_quality_max.*jpeg_quality_min=80"):
        AugmentConfig(jpeg_quality_min=80, jpeg_quality_max=50)


def test_robust_experiment_and_study_compose() -> None:
    from realfake.evaluate.study import load_study
    from realfake.train import compose

    cfg = compose(["experiment=demo", "experiment=robust"])
    aug = cfg.data.augment
    assert aug.blur_prob == 0.5 and aug.jpeg_prob == 0.5 and aug.jpeg_quality_min == 30
    assert cfg.data.batch_size == 32  # the demo recipe underneath
    study = load_study("robust_training")
    assert {"clean", "robust", "robust_all"} == set(study.arms)
    for overrides in study.arms.values():
        compose([*study.common, *overrides])  # every arm is a valid config
    robust = compose([*study.common, *study.arms["robust"]]).data.augment
    assert (robust.blur_prob, robust.jpeg_prob, robust.noise_prob) == (0.5, 0.5, 0.0)
