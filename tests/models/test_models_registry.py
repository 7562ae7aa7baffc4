"""The registry and the errors a user meets when asking for a model that cannot be built."""

from __future__ import annotations

import pytest
from torch import nn

from realfake.errors import RealfakeError
from realfake.models import ModelError, build_model, list_models, model_options, register_model
from realfake.models.resnet import BasicBlock, ResNet, ResNetSpec


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(
        ModelError, match=r"unknown model 'resnet19'; did you mean resnet18"
    ) as info:
        build_model("resnet19", 2)
    assert "resnet101" in str(info.value)  # the full list follows the suggestions
    assert isinstance(info.value, RealfakeError) and isinstance(info.value, ValueError)


def test_unknown_option_is_named() -> None:
    with pytest.raises(ModelError, match=r"takes no option 'colour'.*image_size"):
        build_model("resnet18", 2, colour="red")


def test_batch_norm_is_a_vgg_option_only() -> None:
    assert model_options("vgg16")["batch_norm"] is True
    with pytest.raises(ModelError, match="batch_norm"):
        build_model("resnet18", 2, batch_norm=False)


def test_every_model_takes_the_common_options() -> None:
    common = {"in_channels", "image_size", "stem", "dropout", "block_dropout", "zero_init_residual"}
    for name in list_models():
        assert common <= set(model_options(name)), name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stem": "huge"}, "stem must be one of cifar, imagenet"),
        ({"dropout": 1.0}, r"dropout is a probability in \[0, 1\)"),
        ({"block_dropout": -0.1}, "block_dropout"),
        ({"image_size": 0}, "image_size"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_impossible_values_are_named(options: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build_model("resnet18", 2, **options)


def test_zero_classes_is_refused() -> None:
    with pytest.raises(ModelError, match="num_classes"):
        build_model("vgg11", 0)


def test_vgg_refuses_zero_init_residual() -> None:
    with pytest.raises(ModelError, match="residual"):
        build_model("vgg11", 2, zero_init_residual=True)


def test_basic_block_refuses_groups() -> None:
    with pytest.raises(ValueError, match="BasicBlock supports only groups=1"):
        BasicBlock(64, 64, groups=32, width_per_group=4)
    with pytest.raises(ValueError, match="use Bottleneck for ResNeXt"):
        ResNet(ResNetSpec(BasicBlock, (2, 2, 2, 2), groups=2), num_classes=2)


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18", lambda num_classes: nn.Linear(1, num_classes))


def test_list_models_sorts_naturally_and_filters() -> None:
    assert list_models("resnet*") == ["resnet18", "resnet34", "resnet50", "resnet101"]
    assert list_models("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
