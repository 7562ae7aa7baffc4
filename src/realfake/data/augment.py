"""Whole-batch augmentation and normalisation on the model's device (no per-image Python).

Random draws use torch's global generator of ``x.device`` so that the trainer's per-epoch
seeding makes them reproducible; every tensor is created on ``x.device``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; floats are assumed to be in [0, 1] already."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x/255 - mean) / std per channel, for a uint8 (or [0, 1] float) N×3×H×W batch."""
    x = to_unit(x)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_flip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(x.shape[0], device=x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Pad by ``padding`` (reflect) and cut an H×W window at a random offset per image.

    Reflection rather than zeros, as in airbench: black borders would be an artefact that
    appears only in training batches. Equivalent to shifting each image by up to ``padding``
    pixels in each direction.
    """
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    if padding >= min(h, w):  # reflect needs padding < size; zeros are the only choice then
        padded = F.pad(x, (padding,) * 4)
    else:
        padded = F.pad(x, (padding,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    # One gather for the whole batch: out[i, k, y, x] = padded[i, k, y + dy[i], x + dx[i]].
    return padded[batch, channel, rows, cols]


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std in [0, 1] units of a uint8 N×3×H×W tensor.

    Counting the 256 possible values per channel (in chunks) is exact, needs no float copy of
    the data and reads a memory-mapped tensor sequentially.
    """
    counts = torch.zeros(images.shape[1], 256, dtype=torch.float64)
    for start in range(0, images.shape[0], 8192):
        block = images[start : start + 8192]
        for ch in range(images.shape[1]):
            counts[ch] += torch.bincount(block[:, ch].reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    total = counts.sum(1)
    mean = (counts * values).sum(1) / total
    var = (counts * values**2).sum(1) / total - mean**2
    std = var.clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
