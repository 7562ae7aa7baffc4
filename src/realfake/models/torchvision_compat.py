"""Rename torchvision's state-dict keys to ours, so its weights load into the same architectures."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from realfake.models.resnet import IMAGENET_RESNETS
from realfake.models.vgg import VGG_WIDTHS

# torchvision's ResNet keeps its stem in flat attributes and names stages layer1..layer4; ours
# groups them as `stem` and `stages` so that CIFAR-sized nets with 3 stages read the same way.
_RESNET_RENAMES = (
    (re.compile(r"^conv1\."), "stem.0."),
    (re.compile(r"^bn1\."), "stem.1."),
    (re.compile(r"^layer(\d)\."), lambda m: f"stages.{int(m.group(1)) - 1}."),
)


def from_torchvision_state_dict(
    name: str, state_dict: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Torchvision's state dict for model `name` (ImageNet layout) with our parameter names."""
    if name in VGG_WIDTHS:
        return dict(state_dict)  # VGG's features/avgpool/classifier already match torchvision
    if name not in IMAGENET_RESNETS:
        raise ValueError(f"{name!r} has no torchvision counterpart")
    renamed = {}
    for key, value in state_dict.items():
        for pattern, replacement in _RESNET_RENAMES:
            key = pattern.sub(replacement, key, count=1)
        renamed[key] = value
    return renamed
