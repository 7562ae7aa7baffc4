"""Every registered model, by name: forward at 32 and 96 px, backward, channels-last, options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from realfake.models import build_model, gradcam_target_layer, list_models

EXPECTED_MODELS = {
    *("resnet18", "resnet34", "resnet50", "resnet101"),
    *("resnext50_32x4d", "resnext101_32x8d"),
    *("resnext29_2x64d", "resnext29_4x64d", "resnext29_8x64d", "resnext29_32x4d"),
    *("vgg11", "vgg13", "vgg16", "vgg19"),
    "npr_resnet",
}
# Every registered model runs forward (32 px, two classes) and backward in the fast tier, except
# that the three largest nets (≥ 34M parameters) keep only the forward case there. The other image
# size (96 px picks the ImageNet stem), ten classes (only the head's width changes) and the
# channels-last layout are checked fast on one model per family; the full grid runs in `slow`.
HEAVY = {"resnet101", "resnext101_32x8d", "resnext29_8x64d"}
PER_FAMILY = {"fastnet", "npr_resnet", "resnet18", "resnext29_2x64d", "vgg11"}


def _slow_if(heavy: bool) -> list:
    return [pytest.mark.slow] if heavy else []


def _forward_cases() -> list:
    cases = []
    for name in list_models():
        for image_size, num_classes in ((32, 2), (32, 10), (96, 2), (96, 10)):
            slow = (image_size, num_classes) != (32, 2) and name not in PER_FAMILY
            cases.append(pytest.param(name, image_size, num_classes, marks=_slow_if(slow)))
    return cases


def _per_model_cases() -> list:
    return [pytest.param(name, marks=_slow_if(name in HEAVY)) for name in list_models()]


def _per_family_cases() -> list:
    return [pytest.param(name, marks=_slow_if(name not in PER_FAMILY)) for name in list_models()]


def test_registry_holds_the_issue_models() -> None:
    assert set(list_models()) >= EXPECTED_MODELS


@pytest.mark.parametrize(("name", "image_size", "num_classes"), _forward_cases())
def test_forward_gives_finite_logits_per_image(
    name: str, image_size: int, num_classes: int
) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes, image_size=image_size).eval()
    features: list[torch.Tensor] = []
    gradcam_target_layer(model).register_forward_hook(lambda m, i, o: features.append(o))
    images = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    assert not torch.equal(logits[0], logits[1]), "two different images got the same logits"
    # Grad-CAM needs a spatial map from the feature layer, not a pooled vector.
    assert features[0].ndim == 4 and features[0].shape[0] == 2


@pytest.mark.parametrize("name", _per_model_cases())
def test_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 2, image_size=32).train()
    # Grad-CAM hooks the feature layer both ways; autograd must accept that on every model.
    maps: list[torch.Tensor] = []
    layer = gradcam_target_layer(model)
    layer.register_forward_hook(lambda m, i, o: maps.append(o))
    layer.register_full_backward_hook(lambda m, grad_in, grad_out: maps.append(grad_out[0]))
    images = torch.randn(2, 3, 32, 32)
    loss = F.cross_entropy(model(images), torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert maps[1].shape == maps[0].shape and maps[1].abs().sum() > 0
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{param_name} has a non-finite gradient"
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0, "the gradient vanished before the first layer"


@pytest.mark.parametrize("name", _per_family_cases())
def test_channels_last_gives_the_same_logits(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 10, image_size=32).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        actual = model(images.contiguous(memory_format=torch.channels_last))
    # Channels-last convolutions sum in another order: equal up to float32 rounding.
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * max(scale, 1.0))


@pytest.mark.parametrize("name", ["resnet18", "resnext29_32x4d", "vgg11"])
def test_dropout_acts_in_training_only(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 2, dropout=0.5, block_dropout=0.2)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(images), model(images))
        model.eval()
        assert torch.equal(model(images), model(images))
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) >= 2


@pytest.mark.parametrize("name", ["resnet18", "resnext29_32x4d"])
def test_zero_init_residual_starts_every_block_as_the_identity(name: str) -> None:
    model = build_model(name, 2, zero_init_residual=True)
    blocks = [m for m in model.modules() if hasattr(m, "last_bn")]
    assert blocks
    assert all(torch.count_nonzero(block.last_bn().weight) == 0 for block in blocks)
    default = build_model(name, 2)
    assert all(
        torch.count_nonzero(m.last_bn().weight) > 0
        for m in default.modules()
        if hasattr(m, "last_bn")
    )


@pytest.mark.parametrize(
    ("image_size", "stem", "first_kernel"),
    [
        (32, None, 3),
        (63, None, 3),
        (64, None, 7),
        (96, None, 7),
        (96, "cifar", 3),
        (32, "imagenet", 7),
    ],
)
def test_stem_follows_image_size_unless_given(
    image_size: int, stem: str | None, first_kernel: int
) -> None:
    model = build_model("resnet18", 2, image_size=image_size, stem=stem)
    assert model.stem[0].kernel_size == (first_kernel, first_kernel)
    assert any(isinstance(m, nn.MaxPool2d) for m in model.stem) == (first_kernel == 7)


def test_vgg_head_fits_the_stem() -> None:
    with torch.device("meta"):
        small = build_model("vgg16", 2, stem="cifar")
        large = build_model("vgg16", 2, stem="imagenet")
    assert small.classifier[-1].in_features == 512
    assert [m.out_features for m in large.classifier if isinstance(m, nn.Linear)] == [4096, 4096, 2]


def test_vgg_without_batch_norm_has_none() -> None:
    model = build_model("vgg11", 2, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2)


def test_in_channels_sets_the_input_width() -> None:
    for name in ("resnet18", "resnext29_32x4d", "vgg11"):
        model = build_model(name, 3, in_channels=1).eval()
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 3)
