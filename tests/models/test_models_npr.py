"""npr_resnet: NPR's truncated ResNet-50 (Tan et al. CVPR 2024), built from the project's blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tv

from realfake.models import build_model, count_macs, count_params, model_options
from realfake.models.torchvision_compat import from_torchvision_state_dict


def npr_reference(num_classes: int) -> nn.Module:
    """NPR's network as its authors build it: torchvision's ResNet-50 with a 3×3/2 first
    convolution, without layer3 and layer4, and a 512-wide linear head."""
    model = tv.resnet50(weights=None)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
    model.layer3 = model.layer4 = nn.Identity()
    model.fc = nn.Linear(512, num_classes)
    return model


def npr_input(x: torch.Tensor) -> torch.Tensor:
    """The reference code's input: x minus its nearest 2× down-and-up-sampling, times 2/3."""
    half = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return (x - F.interpolate(half, scale_factor=2.0, mode="nearest")) * 2.0 / 3.0


def test_parameter_count_is_the_papers_1_44_m() -> None:
    with torch.device("meta"):
        ours = build_model("npr_resnet", 1, image_size=224)
        reference = npr_reference(1)
    assert count_params(ours) == count_params(reference) == 1_437_761


def test_logits_equal_the_reference_network_on_the_npr_input() -> None:
    torch.manual_seed(0)
    reference = npr_reference(2).eval()
    ours = build_model("npr_resnet", 2, image_size=224).eval()
    # The same renaming as torchvision's ResNet-50 (conv1 -> stem.0, layerN -> stages.N-1).
    renamed = from_torchvision_state_dict("resnet50", reference.state_dict())
    ours.load_state_dict(renamed)  # strict: every tensor has its counterpart
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = reference(npr_input(images))
        actual = ours(images)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_npr_is_the_default_input_and_can_be_switched_off() -> None:
    assert model_options("npr_resnet")["input_transform"] == "npr"
    assert type(build_model("npr_resnet", 2).input_transform).__name__ == "NeighbourResidual"
    assert build_model("npr_resnet", 2, input_transform="none").input_transform is None
    assert build_model("npr_resnet", 2, input_transform="haar_hh").input_transform is not None


@pytest.mark.parametrize(
    ("image_size", "macs"),
    [
        (224, 1_717_224_448),  # 3×3/2 stem + max-pool: layer1 at 56×56, layer2 at 28×28
        (32, 555_418_624),  # the CIFAR stem below 64 px: layer1 at 32×32, layer2 at 16×16
    ],
)
def test_macs_at_224_and_32_px(image_size: int, macs: int) -> None:
    with torch.device("meta"):
        model = build_model("npr_resnet", 2, image_size=image_size)
    assert count_macs(model, image_size) == macs


@pytest.mark.parametrize("size", [(8, 8), (37, 51), (64, 64), (97, 130)])
def test_runs_on_any_image_size_it_was_not_built_for(size: tuple[int, int]) -> None:
    """Global pooling: a network built for 256 px crops scores native-resolution images."""
    torch.manual_seed(0)
    model = build_model("npr_resnet", 2, image_size=256).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, *size))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
