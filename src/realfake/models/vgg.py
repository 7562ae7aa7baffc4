"""VGG (Simonyan & Zisserman 2015): stacks of 3×3 convolutions described by a table of widths."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch
from torch import nn

from realfake.models.layers import Stem, check_common, dropout_layer, resolve_stem
from realfake.models.registry import register_model
from realfake.models.residuals import make_input_transform

Width = int | Literal["M"]

# Simonyan & Zisserman 2015, Table 1, configurations A, B, D and E: a number is a 3×3 convolution
# with that many output channels, "M" a 2×2 max-pool that halves the resolution.
VGG_WIDTHS: dict[str, tuple[Width, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        *(64, 64, "M", 128, 128, "M"),
        *(256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    ),
    "vgg19": (
        *(64, 64, "M", 128, 128, "M"),
        *(256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    ),
}


def vgg_features(
    widths: Sequence[Width], in_channels: int, batch_norm: bool, block_dropout: float
) -> nn.Sequential:
    """The convolutional part: conv (+ batch norm) + ReLU per width, a max-pool per "M"."""
    layers: list[nn.Module] = []
    last_pool = max(i for i, w in enumerate(widths) if w == "M")
    last_conv = max(i for i, w in enumerate(widths) if w != "M")
    for index, width in enumerate(widths):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            if block_dropout > 0 and index != last_pool:
                # Dropout between stages, not before the head: that one is `dropout`.
                layers.append(nn.Dropout(block_dropout))
            continue
        # The convolution keeps its bias even before batch norm, as in torchvision's vgg*_bn,
        # so that torchvision's weights load unchanged.
        layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        # The last ReLU is the Grad-CAM target; were it in-place, it would overwrite the tensor a
        # full backward hook on it hands out, which autograd refuses.
        layers.append(nn.ReLU(inplace=index != last_conv))
        in_channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG features followed by a small head for small images, or the original 4096-4096 head."""

    def __init__(
        self,
        widths: Sequence[Width],
        num_classes: int,
        *,
        in_channels: int = 3,
        image_size: int = 32,
        stem: Stem | None = None,
        dropout: float = 0.0,
        block_dropout: float = 0.0,
        zero_init_residual: bool = False,
        batch_norm: bool = True,
        input_transform: str | None = None,
    ) -> None:
        super().__init__()
        check_common(num_classes, in_channels, dropout, block_dropout)
        if zero_init_residual:
            raise ValueError("zero_init_residual=True needs residual branches, which VGG has not")
        self.input_transform = make_input_transform(input_transform, in_channels)
        if self.input_transform is not None:
            in_channels = self.input_transform.out_channels
        self.features = vgg_features(widths, in_channels, batch_norm, block_dropout)
        channels = next(w for w in reversed(widths) if w != "M")
        # VGG has no stem to swap; the same choice picks the head instead.
        if resolve_stem(stem, image_size) == "cifar":
            # After five pools a 32 px image is 1×1, so a 7×7 pool would only copy it 49 times
            # into a 102M-parameter layer; average and classify directly, as CIFAR VGGs do.
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                dropout_layer(dropout), nn.Linear(channels, num_classes)
            )
        else:
            # The ImageNet layout, parameter for parameter as torchvision's vgg*_bn.
            self.avgpool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Linear(channels * 7 * 7, 4096),
                nn.ReLU(inplace=True),
                dropout_layer(dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                dropout_layer(dropout),
                nn.Linear(4096, num_classes),
            )
        self._init_weights()

    def _init_weights(self) -> None:
        # Torchvision's initialisation: He et al. 2015 for convolutions, N(0, 0.01) for the head.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    @property
    def feature_layer(self) -> nn.Module:
        """The ReLU after the last convolution: the deepest spatial map (the Grad-CAM target)."""
        return next(m for m in reversed(self.features) if isinstance(m, nn.ReLU))

    @property
    def feature_stages(self) -> tuple[nn.Module, ...]:
        """The modules whose outputs are the network's stages, shallowest first: the ReLU before
        each max-pool, the full map of each resolution (the last is ``feature_layer``)."""
        layers = list(self.features)
        return tuple(layers[i - 1] for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


for _name, _widths in VGG_WIDTHS.items():
    register_model(_name, partial(VGG, _widths))
