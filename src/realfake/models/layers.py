"""Pieces every architecture shares: the stem choice, dropout and the checks on common options."""

from __future__ import annotations

from typing import Literal

from torch import nn

Stem = Literal["cifar", "imagenet"]
STEMS: tuple[Stem, ...] = ("cifar", "imagenet")

# The ImageNet stem divides the resolution by 4 before the first stage; a 32 px CIFAKE image would
# reach the last ResNet stage as 1×1. He et al. 2016 (§4.2) and Xie et al. 2017 (§5.3) use a single
# 3×3 stride-1 convolution on 32 px CIFAR instead. From 64 px on, the ImageNet stem still leaves a
# 2×2 map at the last stage (3×3 at the seeds' 96 px) for a sixteenth of the stages' compute.
CIFAR_STEM_BELOW_PX = 64


def resolve_stem(stem: str | None, image_size: int) -> Stem:
    """The stem to build: `stem` itself, or the one that suits `image_size` when it is None."""
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    if stem is None:
        return "cifar" if image_size < CIFAR_STEM_BELOW_PX else "imagenet"
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {', '.join(STEMS)} or None, got {stem!r}")
    return stem


def check_common(num_classes: int, in_channels: int, dropout: float, block_dropout: float) -> None:
    """Raise ValueError naming the first option whose value no model can use."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be at least 1, got {in_channels}")
    for option, p in (("dropout", dropout), ("block_dropout", block_dropout)):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{option} is a probability in [0, 1), got {p}")


def dropout_layer(p: float) -> nn.Module:
    """Dropout with probability `p`, or an Identity when p is 0 so training pays nothing for it."""
    return nn.Dropout(p) if p > 0 else nn.Identity()
