"""A compact residual network that trains in minutes on a CPU: the project's default model.

The layout is the DAWNBench "ResNet-9" of Page (2018), the ancestor of airbench's CIFAR-10
record nets: one convolution per resolution, max-pooling to downsample, and a residual pair of
3×3 convolutions after the first and last stage. At 32 px it costs about a tenth of a CIFAR
ResNet-18's multiply-adds (see BENCHMARKS.md), which is what makes a CPU demo possible.
"""

from __future__ import annotations

import torch
from torch import nn

from realfake.models.layers import PatchWhitening, check_common, dropout_layer, resolve_stem
from realfake.models.registry import register_model
from realfake.models.residuals import make_input_transform


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """x + two 3×3 conv-BN-ReLU layers; the last BN can start at zero (an identity branch)."""

    def __init__(self, channels: int, block_dropout: float) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            conv_bn(channels, channels), dropout_layer(block_dropout), conv_bn(channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class FastNet(nn.Module):
    """ResNet-9 layout with a width multiplier: prep, 3 pooled stages, residuals on 1 and 3."""

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 3,
        image_size: int = 32,
        stem: str | None = None,
        dropout: float = 0.0,
        block_dropout: float = 0.0,
        zero_init_residual: bool = False,
        width: int = 32,
        pool: str = "max",
        whiten: bool = False,
        input_transform: str | None = None,
    ) -> None:
        super().__init__()
        check_common(num_classes, in_channels, dropout, block_dropout)
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        w = (width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        stem = resolve_stem(stem, image_size)
        if whiten and stem == "imagenet":
            raise ValueError(
                "whiten=True replaces the CIFAR stem's first convolution; it does not combine "
                "with stem='imagenet' (images of 64 px or more)"
            )
        self.input_transform = make_input_transform(input_transform, in_channels)
        if whiten and self.input_transform is not None:
            # Training fits the whitening to the normalised images, not to their residuals.
            raise ValueError(
                f"whiten=True does not combine with input_transform={input_transform!r}: the "
                "whitening would be fitted to images the network never sees"
            )
        if self.input_transform is not None:
            in_channels = self.input_transform.out_channels
        if whiten:
            # airbench's first layer: a frozen 2×2 patch-whitening convolution (fitted to the
            # training images when training starts), 31×31 out; it stands in for the prep
            # convolution, so layer1 reads its 2·3·2·2 = 24 channels.
            whitening = PatchWhitening(in_channels, kernel_size=2)
            layers.append(whitening)
            w = (whitening.out_channels, *w[1:])
        elif stem == "imagenet":
            # Large inputs: a strided 7×7 convolution and a pool bring them to CIFAR scale first.
            layers += [
                nn.Conv2d(in_channels, w[0], 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(w[0]),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
        else:
            layers.append(conv_bn(in_channels, w[0]))
        self.prep = nn.Sequential(*layers)
        self.layer1 = nn.Sequential(
            conv_bn(w[0], w[1]), nn.MaxPool2d(2), Residual(w[1], block_dropout)
        )
        self.layer2 = nn.Sequential(conv_bn(w[1], w[2]), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(
            conv_bn(w[2], w[3]), nn.MaxPool2d(2), Residual(w[3], block_dropout)
        )
        # Global max-pooling as Page's ResNet-9; "avg" averages the evidence over the image.
        self.pool = nn.AdaptiveMaxPool2d(1) if pool == "max" else nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(dropout_layer(dropout), nn.Linear(w[3], num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Residual):
                    nn.init.zeros_(module.branch[-1][1].weight)

    @property
    def feature_layer(self) -> nn.Module:
        """The last residual stage: the deepest spatial features (the Grad-CAM target)."""
        return self.layer3

    @property
    def feature_stages(self) -> tuple[nn.Module, ...]:
        """The modules whose outputs are the network's stages, shallowest first: prep, then
        each pooled stage (the last is ``feature_layer``)."""
        return (self.prep, self.layer1, self.layer2, self.layer3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        # Page's ResNet-9 scales the logits by 1/8: with max-pooled features the raw logits are
        # large at initialisation and the first steps at a high learning rate blow up without it.
        return self.head(torch.flatten(self.pool(x), 1)) * 0.125


register_model("fastnet", FastNet)
