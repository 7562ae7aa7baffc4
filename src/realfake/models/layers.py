"""Pieces every architecture shares: the stem choice, dropout and the checks on common options."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
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


class PatchWhitening(nn.Module):
    """A frozen k×k convolution that whitens image patches, then a ReLU (airbench's first layer).

    Its filters are the eigenvectors of the training images' k×k patch covariance, each divided
    by the square root of its eigenvalue (plus ``eps``): every output channel has unit variance
    over the training patches and no two are correlated, so the fine-grained directions (small
    eigenvalues: the high-frequency detail a generator's artefacts live in) reach the next layer
    at the same scale as the coarse ones. Each filter comes with its negation so that the ReLU
    loses nothing (2·C·k² channels). Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single
    GPU" (airbench, 2024), after Coates & Ng 2011's patch whitening.

    The filters are a buffer, not a parameter: nothing trains them, and they travel with the
    weights in checkpoints and ONNX files. Until :meth:`fit` sees data they are the patch's
    pixels themselves (the whitening of an identity covariance), so an unfitted layer still
    passes the image on. The bias is trained. Output is (size - k + 1) pixels a side.
    """

    def __init__(self, in_channels: int, kernel_size: int = 2, eps: float = 5e-4) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be at least 1, got {kernel_size}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.in_channels, self.kernel_size, self.eps = in_channels, kernel_size, eps
        dims = in_channels * kernel_size * kernel_size
        self.out_channels = 2 * dims
        basis = torch.eye(dims).view(dims, in_channels, kernel_size, kernel_size)
        self.register_buffer("weight", torch.cat([basis, -basis]))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> torch.Tensor:
        """Set the filters from N×C×H×W (normalised) training images; returns the eigenvalues.

        The covariance is of all k×k patches at stride 1, about zero as airbench's (the images
        are already normalised per channel), in float64 so that the smallest eigenvalues keep
        their precision.
        """
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"expected N×{self.in_channels}×H×W images to fit the whitening, "
                f"got shape {tuple(images.shape)}"
            )
        k, dims = self.kernel_size, self.weight.shape[1] * self.kernel_size**2
        covariance = torch.zeros(dims, dims, dtype=torch.float64, device=images.device)
        count = 0
        for chunk in images.split(256):
            # unfold: N × (C·k·k) × L, each column one patch in the filters' (C, k, k) order.
            patches = F.unfold(chunk.double(), k).transpose(1, 2).reshape(-1, dims)
            covariance += patches.T @ patches
            count += len(patches)
        covariance /= max(count, 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T / (eigenvalues.clamp_min(0) + self.eps).sqrt().view(-1, 1)
        filters = filters.view(-1, self.in_channels, k, k).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))
        return eigenvalues

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.conv2d(x, self.weight, self.bias))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"eps={self.eps}, frozen"
        )


def fit_whitening(model: nn.Module, images: torch.Tensor) -> int:
    """Fit every :class:`PatchWhitening` of ``model`` to ``images``; returns how many there were.

    Training calls it once on a fresh network (a resumed one loads its fitted filters).
    """
    layers = [m for m in model.modules() if isinstance(m, PatchWhitening)]
    for layer in layers:
        layer.fit(images)
    return len(layers)
