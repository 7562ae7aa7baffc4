"""DataConfig: plain dataclasses that OmegaConf accepts, with values checked by name."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from realfake.data.config import AugmentConfig, DataConfig
from realfake.errors import ConfigError


def test_defaults_and_structured_config_round_trip() -> None:
    cfg = OmegaConf.structured(DataConfig)
    cfg.image_size = 96
    cfg.classes = ["FAKE", "REAL"]
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, DataConfig) and isinstance(obj.augment, AugmentConfig)
    assert (obj.image_size, obj.resize, obj.val_fraction, obj.test_fraction) == (
        96,
        "stretch",
        0.1,
        0.0,
    )
    assert obj.source is None and obj.classes == ["FAKE", "REAL"] and obj.augment.crop_padding == 4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"resize": "squash"}, "'resize'"),
        ({"image_size": 4}, "'image_size'"),
        ({"val_fraction": 1.0}, "'val_fraction'"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "'val_fraction + test_fraction'"),
        ({"batch_size": 0}, "'batch_size'"),
        ({"classes": ["a", "a"]}, "'classes'"),
        ({"augment": AugmentConfig(crop_padding=2)} | {"num_workers": -1}, "'num_workers'"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        DataConfig(**kwargs)


def test_bad_augment_value() -> None:
    with pytest.raises(ConfigError, match=r"augment\.crop_padding"):
        AugmentConfig(crop_padding=-1)
