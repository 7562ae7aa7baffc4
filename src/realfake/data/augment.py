"""Whole-batch augmentation and normalisation on the model's device (no per-image Python).

The robust-training degradations (blur, noise, down-and-up resizing, JPEG) follow CNNDetection
(Wang et al., CVPR 2020), where blur and JPEG augmentation made detectors survive post-processing;
JPEG alone needs a codec, so the picked images make one round trip through uint8 on the CPU.

Random draws use torch's global generator of ``x.device`` so that the trainer's per-epoch
seeding makes them reproducible; every tensor is created on ``x.device``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; floats are assumed to be in [0, 1] already."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x/255 - mean) / std per channel, for a uint8 (or [0, 1] float) N×3×H×W batch.

    One conversion to float, then an in-place multiply and add (scale 1/(255·std), shift
    -mean/std): one new tensor where ``to_unit`` then ``(x - m) / s`` made three. (A single
    broadcast ``addcmul`` measured 12× slower than these in-place passes on this CPU.)
    """
    unit = 255.0 if x.dtype == torch.uint8 else 1.0
    shape = (1, -1, 1, 1)
    mean64 = torch.as_tensor(mean, dtype=torch.float64)
    std64 = torch.as_tensor(std, dtype=torch.float64)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    scale = (1.0 / (unit * std64)).to(dtype=dtype, device=x.device).view(shape)
    shift = (-mean64 / std64).to(dtype=dtype, device=x.device).view(shape)
    return x.to(dtype, copy=True).mul_(scale).add_(shift)  # copy: never touch the input


def random_flip_crop(
    x: torch.Tensor,
    padding: int,
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random horizontal flip and pad-and-crop of a batch of any dtype, in one gather.

    Each image is mirrored left-right with probability ``flip_p``, then shifted by up to
    ``padding`` pixels in each direction with reflected borders (as airbench: black borders would
    be an artefact seen only in training batches); padding at least the image size pads zeros.
    Rather than padding the batch and cutting windows, the source pixel of every output pixel is
    computed on small N×H and N×W index tensors and the batch is read once, so flipping and
    cropping uint8 images costs one uint8 pass (the data-path profile in BENCHMARKS.md).

    The random draws are those of flipping then cropping separately (``rand(N)`` for the flips,
    then ``randint`` for the row and the column offsets), so ``random_crop(random_flip(x), p)``
    under the same seed gives the same batch. They come from ``generator`` when given (seeded
    alike, it draws what the global generator would), else from the global generator.
    """
    n, c, h, w = x.shape
    device = x.device
    g = generator
    flip = torch.rand(n, device=device, generator=g) < flip_p if flip_p > 0 else None
    rows = torch.arange(h, device=device).expand(n, h)
    cols = torch.arange(w, device=device).expand(n, w)
    valid = None
    if padding > 0:
        dy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=g)
        dx = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=g)
        zeros = padding >= min(h, w)  # reflection needs padding < size
        rows, row_ok = _source(rows + (dy - padding).view(n, 1), h, zeros)
        cols, col_ok = _source(cols + (dx - padding).view(n, 1), w, zeros)
        if zeros:
            valid = (row_ok.view(n, h, 1) & col_ok.view(n, 1, w)).view(n, 1, h * w)
    if flip is not None:
        # Mirroring the image before the shift = mirroring the source column after it (the
        # reflected border is symmetric).
        cols = torch.where(flip.view(n, 1), w - 1 - cols, cols)
    if padding <= 0 and flip is None:
        return x
    index = (rows.view(n, h, 1) * w + cols.view(n, 1, w)).view(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, index)
    if valid is not None:
        out = out.masked_fill_(~valid, 0)
    return out.view(n, c, h, w)


def _source(src: torch.Tensor, size: int, zeros: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """In-range source indices of a padded axis, and where they are real (not zero padding)."""
    inside = (src >= 0) & (src < size)
    if zeros:
        return src.clamp(0, size - 1), inside
    src = src.abs()  # reflection about 0 and size - 1 (padding < size keeps one bounce enough)
    return torch.where(src > size - 1, 2 * (size - 1) - src, src), inside


def random_flip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    return random_flip_crop(x, 0, p)


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Pad by ``padding`` (reflect) and cut an H×W window at a random offset per image.

    Equivalent to shifting each image by up to ``padding`` pixels in each direction.
    """
    return random_flip_crop(x, padding, 0.0)


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


# Robust-training degradations. Each picks images with probability ``p`` and draws its strength
# per image, always drawing for the whole batch so that the random stream (and hence a resumed
# run) does not depend on which images were picked.


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8 [0, 255], rounded to the nearest level."""
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def jpeg_roundtrip(images: torch.Tensor, quality: int | Sequence[int]) -> torch.Tensor:
    """Encode and decode uint8 N×3×H×W images as JPEG at ``quality`` (one, or one per image).

    Pillow's libjpeg encoder with its defaults (4:2:0, IJG tables): how CIFAKE's files were
    written. (torchvision.io gives the same bytes twice as fast but is deprecated since 0.29.)
    """
    n = images.shape[0]
    qualities = [int(quality)] * n if isinstance(quality, int) else [int(q) for q in quality]
    if len(qualities) != n:
        raise ValueError(f"got {len(qualities)} JPEG qualities for {n} images")
    pixels = images.cpu().permute(0, 2, 3, 1).numpy()
    out = np.empty_like(pixels)
    for i, (image, q) in enumerate(zip(pixels, qualities, strict=True)):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=q)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)


def random_jpeg(
    x: torch.Tensor, p: float, quality_min: int, quality_max: int = 100
) -> torch.Tensor:
    """JPEG-compress each image of a [0, 1] batch with probability ``p``, quality ~ U{min..max}."""
    n = x.shape[0]
    pick = torch.rand(n, device=x.device) < p
    quality = torch.randint(quality_min, quality_max + 1, (n,), device=x.device)
    rows = pick.nonzero().flatten()
    if rows.numel() == 0:
        return x
    # Only the picked images make the round trip through uint8 on the CPU.
    coded = jpeg_roundtrip(to_uint8(x[rows]), quality[rows].tolist())
    out = x.clone()
    out[rows] = to_unit(coded.to(x.device)).to(x.dtype)
    return out


def random_blur(x: torch.Tensor, p: float, sigma_max: float) -> torch.Tensor:
    """Gaussian-blur each image with probability ``p``, σ ~ U[0, sigma_max] pixels per image.

    A different σ per image in one call: per-image separable kernels in a grouped convolution
    (one group per image and channel), with reflected borders as torchvision's gaussian_blur.
    """
    n, c, h, w = x.shape
    pick = torch.rand(n, device=x.device) < p
    sigma = torch.rand(n, device=x.device) * sigma_max
    rows = pick.nonzero().flatten()
    if rows.numel() == 0 or sigma_max <= 0:
        return x
    radius = max(1, min(math.ceil(3 * sigma_max), h - 1, w - 1))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    # σ → 0 gives a unit impulse (exp(-huge) = 0 off-centre): the image is left as it is.
    s = sigma[rows].clamp_min(1e-3).to(x.dtype).view(-1, 1)
    kernel = torch.exp(-0.5 * (offsets / s) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)
    m, k = rows.numel(), 2 * radius + 1
    y = x[rows].reshape(1, m * c, h, w)
    y = F.conv2d(
        F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel.view(-1, 1, 1, k), groups=m * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel.view(-1, 1, k, 1), groups=m * c
    )
    out = x.clone()
    out[rows] = y.view(m, c, h, w).clamp_(0.0, 1.0)  # float sums can overshoot 1 by an ulp
    return out


def random_noise(x: torch.Tensor, p: float, sigma_max: float) -> torch.Tensor:
    """Add Gaussian noise to each image with probability ``p``, σ ~ U[0, sigma_max] of the range."""
    n = x.shape[0]
    pick = torch.rand(n, device=x.device) < p
    sigma = torch.rand(n, device=x.device, dtype=x.dtype) * sigma_max
    noise = torch.randn_like(x)
    if not bool(pick.any()):
        return x
    scale = torch.where(pick, sigma, torch.zeros_like(sigma)).view(-1, 1, 1, 1)
    return (x + noise * scale).clamp_(0.0, 1.0)


def random_resize(x: torch.Tensor, p: float, scale_min: float) -> torch.Tensor:
    """Shrink each image with probability ``p`` by s ~ U[scale_min, 1] and enlarge it back.

    Images that land on the same integer size are resized together: at 32 px and s ≥ 0.5 that is
    at most 17 interpolation calls per batch, whatever its size.
    """
    n, _, h, w = x.shape
    pick = torch.rand(n, device=x.device) < p
    scale = scale_min + (1.0 - scale_min) * torch.rand(n, device=x.device)
    sizes = torch.stack([(scale * h).round().clamp(1, h), (scale * w).round().clamp(1, w)], 1)
    shrunk = pick & ((sizes[:, 0] < h) | (sizes[:, 1] < w))
    if not bool(shrunk.any()):
        return x
    out = x.clone()
    for sh, sw in sizes[shrunk].unique(dim=0).tolist():
        rows = (shrunk & (sizes[:, 0] == sh) & (sizes[:, 1] == sw)).nonzero().flatten()
        # Antialiased shrinking, as image pipelines (Pillow, browsers) downscale.
        small = F.interpolate(
            x[rows], size=(int(sh), int(sw)), mode="bilinear", antialias=True, align_corners=False
        )
        back = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        out[rows] = back.clamp_(0.0, 1.0)
    return out
