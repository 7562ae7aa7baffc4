"""Proof against something real: our ImageNet-layout models are torchvision's, weight for weight.

torchvision appears only here and in benchmarks, never in realfake.models.
"""

from __future__ import annotations

import pytest
import torch
from torchvision import models as tv

from realfake.models import build_model, count_params
from realfake.models.resnet import ResNet, resnext29
from realfake.models.torchvision_compat import from_torchvision_state_dict

TORCHVISION = {
    "resnet18": tv.resnet18,
    "resnet34": tv.resnet34,
    "resnet50": tv.resnet50,
    "resnet101": tv.resnet101,
    "resnext50_32x4d": tv.resnext50_32x4d,
    "resnext101_32x8d": tv.resnext101_32x8d,
    "vgg11": tv.vgg11_bn,
    "vgg13": tv.vgg13_bn,
    "vgg16": tv.vgg16_bn,
    "vgg19": tv.vgg19_bn,
}


def _ours_on_meta(name: str, **options) -> torch.nn.Module:
    # Counting needs shapes only: the meta device skips allocation and initialisation.
    with torch.device("meta"):
        return build_model(name, 1000, stem="imagenet", **options)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_parameter_count_equals_torchvision(name: str) -> None:
    with torch.device("meta"):
        reference = TORCHVISION[name](weights=None)
    assert count_params(_ours_on_meta(name)) == count_params(reference)


def test_vgg_without_batch_norm_equals_torchvision_vgg16() -> None:
    with torch.device("meta"):
        reference = tv.vgg16(weights=None)
    assert count_params(_ours_on_meta("vgg16", batch_norm=False)) == count_params(reference)


@pytest.mark.parametrize(
    ("name", "batch"),
    [
        ("resnet18", 2),
        ("resnet50", 2),
        ("resnext50_32x4d", 2),
        pytest.param("vgg16", 1, marks=pytest.mark.slow),  # 138M parameters at 224 px
    ],
)
def test_logits_equal_torchvision_with_its_weights(name: str, batch: int) -> None:
    torch.manual_seed(0)
    reference = TORCHVISION[name](weights=None).eval()
    ours = _ours_on_meta(name)
    # strict loading fails on any missing, extra or differently shaped tensor.
    ours.load_state_dict(from_torchvision_state_dict(name, reference.state_dict()), assign=True)
    ours.eval()
    images = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert actual.shape == (batch, 1000)
    assert (actual - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    ("cardinality", "width", "millions"),
    [(8, 64, 34.4), (16, 64, 68.1)],  # Xie et al. 2017, Table 7 (CIFAR-10)
)
def test_resnext29_matches_the_paper(cardinality: int, width: int, millions: float) -> None:
    with torch.device("meta"):
        model = ResNet(resnext29(cardinality, width), num_classes=10)
    assert count_params(model) / 1e6 == pytest.approx(millions, abs=0.1)


def test_seed_resnext29_2x64d_has_9_1m_parameters() -> None:
    with torch.device("meta"):
        model = build_model("resnext29_2x64d", 2)
    assert count_params(model) / 1e6 == pytest.approx(9.1, abs=0.05)


def test_resnext29_has_no_torchvision_counterpart() -> None:
    with pytest.raises(ValueError, match="no torchvision counterpart"):
        from_torchvision_state_dict("resnext29_2x64d", {})
