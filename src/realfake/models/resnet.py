"""ResNet (He et al. 2016) and ResNeXt (Xie et al. 2017): one network, one bottleneck, many widths.

ResNeXt is a ResNet whose bottleneck's 3×3 convolution has `groups` > 1 ("aggregated residual
transformations", Xie et al. 2017 Fig. 3c), so both families are the classes below with different
arguments. Layer names inside blocks follow torchvision, which makes its weights easy to map
(see `torchvision_compat`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from realfake.models.layers import Stem, check_common, dropout_layer, resolve_stem
from realfake.models.registry import register_model
from realfake.models.residuals import make_input_transform


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3×3 convolution with padding 1 and no bias (the batch norm after it has one)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions and a shortcut (He et al. 2016, Fig. 2 left); ResNet-18 and -34."""

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        width_per_group: int = 64,
        block_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if groups != 1 or width_per_group != 64:
            # Xie et al. 2017 §3.3: with only two layers a grouped block is just a wider dense one.
            raise ValueError(
                f"BasicBlock supports only groups=1 and width_per_group=64 (got groups={groups}, "
                f"width_per_group={width_per_group}); use Bottleneck for ResNeXt"
            )
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        # Dropout between the two convolutions of the residual branch, as in Wide ResNets
        # (Zagoruyko & Komodakis 2016, §2.4); it leaves the shortcut untouched.
        self.drop = dropout_layer(block_dropout)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(self.drop(out)))
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm that closes the residual branch."""
        return self.bn2


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (grouped) and 1×1 expand convolutions plus a shortcut; ResNet-50+, ResNeXt.

    The inner width is `planes · width_per_group / 64 · groups`: with groups=1 and width 64 this is
    ResNet's bottleneck (He et al. 2016, Fig. 5), otherwise ResNeXt's template with cardinality
    `groups` and bottleneck width `width_per_group` (Xie et al. 2017, Table 1).
    """

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        width_per_group: int = 64,
        block_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        self.conv1 = conv1x1(in_planes, width)
        self.bn1 = nn.BatchNorm2d(width)
        # The stride sits on the 3×3 convolution ("ResNet v1.5", as in torchvision and in the
        # ResNeXt reference code); a strided 1×1 would skip three quarters of its input.
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.drop = dropout_layer(block_dropout)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.drop(out)))
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm that closes the residual branch."""
        return self.bn3


Block = type[BasicBlock] | type[Bottleneck]


@dataclass(frozen=True)
class ResNetSpec:
    """The architecture: block type, blocks per stage, widths, grouped-conv shape, stem kernel."""

    block: Block
    layers: tuple[int, ...]
    planes: tuple[int, ...] = (64, 128, 256, 512)
    groups: int = 1
    width_per_group: int = 64
    stem_kernel: int = 7


def stem_layers(stem: Stem, in_channels: int, width: int = 64, kernel: int = 7) -> nn.Sequential:
    """The layers before the first stage: 3×3 stride 1 for small images, k×k/2 + max-pool else."""
    if stem == "cifar":
        return nn.Sequential(
            conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
    return nn.Sequential(
        nn.Conv2d(in_channels, width, kernel, stride=2, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


class ResNet(nn.Module):
    """Stem, residual stages (each after the first halves the resolution), pooling, linear head."""

    def __init__(
        self,
        spec: ResNetSpec,
        num_classes: int,
        *,
        in_channels: int = 3,
        image_size: int = 32,
        stem: Stem | None = None,
        dropout: float = 0.0,
        block_dropout: float = 0.0,
        zero_init_residual: bool = False,
        input_transform: str | None = None,
    ) -> None:
        super().__init__()
        check_common(num_classes, in_channels, dropout, block_dropout)
        if len(spec.layers) != len(spec.planes):
            raise ValueError(f"{len(spec.layers)} stage depths for {len(spec.planes)} widths")
        self.input_transform = make_input_transform(input_transform, in_channels)
        if self.input_transform is not None:
            in_channels = self.input_transform.out_channels
        stem_width = 64
        self.stem = stem_layers(
            resolve_stem(stem, image_size), in_channels, stem_width, spec.stem_kernel
        )
        stages = []
        in_planes = stem_width
        for index, (blocks, planes) in enumerate(zip(spec.layers, spec.planes, strict=True)):
            stride = 1 if index == 0 else 2
            stages.append(self._stage(spec, in_planes, planes, blocks, stride, block_dropout))
            in_planes = planes * spec.block.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = dropout_layer(dropout)
        self.fc = nn.Linear(in_planes, num_classes)
        self._init_weights(zero_init_residual)

    @staticmethod
    def _stage(
        spec: ResNetSpec,
        in_planes: int,
        planes: int,
        blocks: int,
        stride: int,
        block_dropout: float,
    ) -> nn.Sequential:
        out_planes = planes * spec.block.expansion
        downsample = None
        if stride != 1 or in_planes != out_planes:
            # Projection shortcut only where the shape changes ("option B", He et al. 2016 §3.3).
            downsample = nn.Sequential(
                conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes)
            )
        block = partial(
            spec.block,
            groups=spec.groups,
            width_per_group=spec.width_per_group,
            block_dropout=block_dropout,
        )
        first = block(in_planes, planes, stride, downsample)
        return nn.Sequential(first, *(block(out_planes, planes) for _ in range(blocks - 1)))

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He et al. 2015 ("Delving deep into rectifiers") initialisation, as torchvision does.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            # Each block then starts as the identity, which Goyal et al. 2017 ("Accurate, large
            # minibatch SGD") found to ease the start of training with large batches.
            for module in self.modules():
                if isinstance(module, BasicBlock | Bottleneck):
                    nn.init.zeros_(module.last_bn().weight)

    @property
    def feature_layer(self) -> nn.Module:
        """The last residual block: the deepest spatial features (the Grad-CAM target)."""
        return self.stages[-1][-1]

    @property
    def feature_stages(self) -> tuple[nn.Module, ...]:
        """The modules whose outputs are the network's stages, shallowest first: the stem, then
        each residual stage (the last ends with ``feature_layer``)."""
        return (self.stem, *self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        x = self.stages(self.stem(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(self.dropout(x))


IMAGENET_RESNETS = {
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(Bottleneck, (3, 4, 23, 3)),
    # Xie et al. 2017, Table 1 (50 layers, 32×4d); the 101-layer 32×8d is torchvision's.
    "resnext50_32x4d": ResNetSpec(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": ResNetSpec(Bottleneck, (3, 4, 23, 3), groups=32, width_per_group=8),
}


def resnext29(cardinality: int, width_per_group: int) -> ResNetSpec:
    """ResNeXt-29 (cardinality × width) for CIFAR, Xie et al. 2017 §5.3: 3 stages of 3 bottlenecks.

    Stage outputs are 256, 512 and 1024 channels; the grouped 3×3 is cardinality × width wide in
    stage 1 and doubles with each stage, which is Bottleneck's width rule with planes 64/128/256.
    """
    return ResNetSpec(Bottleneck, (3, 3, 3), (64, 128, 256), cardinality, width_per_group)


CIFAR_RESNEXTS = {
    "resnext29_2x64d": resnext29(2, 64),  # the seed project's network
    "resnext29_4x64d": resnext29(4, 64),
    "resnext29_8x64d": resnext29(8, 64),
    "resnext29_32x4d": resnext29(32, 4),
}

# NPR's network (Tan et al. CVPR 2024, networks/resnet.py of their code): ResNet-50's first two
# stages (3 + 4 bottlenecks, 256 and 512 channels out), pooled into a linear head, behind a
# 3×3/2 stem convolution (not ResNet's 7×7) and max-pool; 1.44M parameters, trained from
# scratch on the neighbouring-pixel residual. The trace it reads is local (2×2 blocks), so two
# stages suffice; global pooling lets it take images of any size (crops at native resolution).
NPR_RESNET = ResNetSpec(Bottleneck, (3, 4), (64, 128), stem_kernel=3)

for _name, _spec in {**IMAGENET_RESNETS, **CIFAR_RESNEXTS}.items():
    register_model(_name, partial(ResNet, _spec))
register_model("npr_resnet", partial(ResNet, NPR_RESNET, input_transform="npr"))
