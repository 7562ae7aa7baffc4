"""Whole-batch augmentation and normalisation on the model's device (no per-image Python).

The robust-training degradations (blur, noise, down-and-up resizing, JPEG) follow CNNDetection
(Wang et al., CVPR 2020), where blur and JPEG augmentation made detectors survive post-processing;
zooming (a central crop enlarged back), brightness and contrast cover the rest of the robustness
grid, as the photometric jitter of AugMix-style training (Hendrycks et al., ICLR 2020).
They apply the robustness grid's perturbations (``realfake.data.perturbations``, whose ``KINDS``
give the units of every level) to uint8 batches, at a level drawn per image; JPEG alone needs a
codec, so the picked images make one round trip through the CPU. SAFE's augmentations against
shortcuts (Li et al., KDD 2025: right-angle rotation, colour jitter, patch masking) follow them.

Random draws come from the ``generator`` argument when given (on ``x.device``), else from torch's
global generator of ``x.device``; every tensor is created on ``x.device``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from realfake.data.perturbations import blur, brightness, contrast, crop, jpeg, noise, resize


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x/255 - mean) / std per channel, for a uint8 (or [0, 1] float) N×3×H×W batch.

    One conversion to float, then an in-place multiply and add (scale 1/(255·std), shift
    -mean/std): one new tensor where ``x / 255`` then ``(x - m) / s`` make three. (A single
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


# Robust-training degradations of uint8 batches. Each picks images with probability ``p`` and
# draws a level per image, always for the whole batch, so that the random stream (and hence a
# resumed run) does not depend on which images were picked. The levels are in the units of the
# perturbation's KINDS entry.


def _pick(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Which images to degrade: a boolean per image, True with probability ``p``."""
    return torch.rand(x.shape[0], device=x.device, generator=generator) < p


def _uniform(
    x: torch.Tensor, low: float, high: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One level per image, uniform in [low, high)."""
    return low + (high - low) * torch.rand(x.shape[0], device=x.device, generator=generator)


def _apply_to(
    x: torch.Tensor,
    pick: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    level: torch.Tensor,
) -> torch.Tensor:
    """``fn(images, level)`` of the picked images only, the others as they are."""
    rows = pick.nonzero().flatten()
    if rows.numel() == 0:
        return x
    out = x.clone()
    out[rows] = fn(x[rows], level[rows])
    return out


def random_jpeg(
    x: torch.Tensor,
    p: float,
    quality_min: int,
    quality_max: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """JPEG-compress each image with probability ``p``, quality ~ U{min..max} per image."""
    pick = _pick(x, p, generator)
    quality = torch.randint(
        quality_min, quality_max + 1, (x.shape[0],), device=x.device, generator=generator
    )
    return _apply_to(x, pick, jpeg, quality)


def random_blur(
    x: torch.Tensor, p: float, sigma_max: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian-blur each image with probability ``p``, σ ~ U[0, sigma_max] per image."""
    pick = _pick(x, p, generator)
    sigma = _uniform(x, 0.0, sigma_max, generator)
    return _apply_to(x, pick, blur, sigma)


def random_noise(
    x: torch.Tensor, p: float, sigma_max: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise to each image with probability ``p``, σ ~ U[0, sigma_max] per image."""
    pick = _pick(x, p, generator)
    sigma = _uniform(x, 0.0, sigma_max, generator)
    # The whole batch, unpicked images at σ = 0 (left as they are): the noise drawn then does
    # not depend on the picks either, and nothing waits for the device to count them.
    return noise(x, torch.where(pick, sigma, 0.0), generator)


def random_resize(
    x: torch.Tensor, p: float, scale_min: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shrink each image with probability ``p`` by s ~ U[scale_min, 1] and enlarge it back."""
    # Images shrunk to the same integer size are resized together (at 32 px and s >= 0.5 at
    # most 17 groups per batch, whatever its size).
    return _degrade_by_factor(x, p, scale_min, 1.0, resize, generator)


def _degrade_by_factor(
    x: torch.Tensor,
    p: float,
    low: float,
    high: float,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``fn`` of each image with probability ``p`` at a factor ~ U[low, high] per image, the whole
    batch in one call: the others at factor 1, which leaves an image as it is."""
    pick = _pick(x, p, generator)
    factor = _uniform(x, low, high, generator)
    return fn(x, torch.where(pick, factor, 1.0))


def random_zoom(
    x: torch.Tensor, p: float, fraction_min: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Keep the central f ~ U[fraction_min, 1] of each side of each image with probability ``p``
    and enlarge it back (the grid's ``crop``)."""
    return _degrade_by_factor(x, p, fraction_min, 1.0, crop, generator)


def random_brightness(
    x: torch.Tensor, p: float, max_change: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scale each image's pixels with probability ``p``, brightness factor
    f ~ U[1 - max_change, 1 + max_change]."""
    return _degrade_by_factor(x, p, 1.0 - max_change, 1.0 + max_change, brightness, generator)


def random_contrast(
    x: torch.Tensor, p: float, max_change: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Blend each image with its mean grey with probability ``p``, contrast factor
    f ~ U[1 - max_change, 1 + max_change]."""
    return _degrade_by_factor(x, p, 1.0 - max_change, 1.0 + max_change, contrast, generator)


# Augmentations against shortcuts, after SAFE (Li et al., KDD 2025, and its code
# data/datasets.py): a detector that reads pixel-level traces should not also learn the images'
# orientation, colours or any single region. SAFE trains with flips, rotation by up to 180°,
# colour jitter (0.5, 0.5, 0.5) and masking of 0-75 % of 16 px patches with p = 0.5. Like the
# degradations above they take a whole batch, draw for every image whatever the picks, and
# leave the input alone.


def random_rotate90(
    x: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image by 90°, 180° or 270° (uniformly) with probability ``p``; square images.

    SAFE rotates by any angle up to 180°, which resamples every pixel: an image whose pixels a
    generator's 2× up-sampling repeated (the trace NPR and the HH band read) loses that trace
    under a 30° rotation and keeps it exactly under right angles (measured in the tests and in
    docs/generalisation.md). So only right angles here: an exact permutation of the pixels, in
    one gather of any dtype. ``p`` = 0.75 gives the four right angles equal odds.
    """
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"rotating by right angles needs square images, got {h}×{w}")
    pick = _pick(x, p, generator)
    turns = torch.randint(1, 4, (n,), device=x.device, generator=generator)
    turns = torch.where(pick, turns, 0)
    i = torch.arange(h, device=x.device).view(h, 1).expand(h, w)
    j = torch.arange(w, device=x.device).view(1, w).expand(h, w)
    last = h - 1
    # Source pixel of output pixel (i, j) after k anticlockwise quarter turns (torch.rot90).
    sources = torch.stack(
        [i * w + j, j * w + (last - i), (last - i) * w + (last - j), (last - j) * w + i]
    ).view(4, h * w)
    index = sources[turns].view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)


def _saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each uint8 image with its own grey by its factor, as torchvision's
    adjust_saturation (factor 1 leaves it as it is, 0 makes it grey)."""
    levels = factor.view(-1, 1, 1, 1)
    r, g, b = images.unbind(1)
    grey = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_().unsqueeze(1)
    weight = (1.0 - levels.double()).float()  # as perturbations.contrast: torchvision's _blend
    return images.mul(levels).addcmul_(grey, weight).clamp_(0, 255).to(torch.uint8)


def random_colour_jitter(
    x: torch.Tensor,
    p: float,
    brightness_change: float = 0.5,
    contrast_change: float = 0.5,
    saturation_change: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """With probability ``p`` per image, brightness, contrast and saturation factors each
    ~ U[max(0, 1 - change), 1 + change], applied in that order to a uint8 batch.

    torchvision's ColorJitter (SAFE's 0.5, 0.5, 0.5) with a fixed order instead of a random one
    per image; brightness and contrast are the robustness grid's own functions.
    """
    pick = _pick(x, p, generator)
    factors = [
        torch.where(pick, _uniform(x, max(0.0, 1.0 - change), 1.0 + change, generator), 1.0)
        for change in (brightness_change, contrast_change, saturation_change)
    ]
    x = brightness(x, factors[0])
    x = contrast(x, factors[1])
    return _saturation(x, factors[2])


def random_patch_mask(
    x: torch.Tensor,
    p: float,
    fraction: tuple[float, float] = (0.0, 0.75),
    patch_size: int = 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """With probability ``p`` per image, set floor(f·P) of its P patch_size² patches to 0,
    f ~ U[fraction], the patches at random (SAFE's RandomMask, black as there).

    The patches tile the image from its top-left corner; a strip narrower than a patch on the
    right or bottom is never masked (as SAFE, which counts h // patch_size rows of patches).
    Masking forces the detector to find its evidence all over the image, not in one place.
    """
    n, _, h, w = x.shape
    rows, cols = h // patch_size, w // patch_size
    count = rows * cols
    pick = _pick(x, p, generator)
    share = _uniform(x, fraction[0], fraction[1], generator)
    scores = torch.rand(n, count, device=x.device, generator=generator)
    masked = (share * count).floor_().long() * pick  # patches to mask per image, 0 if unpicked
    # The `masked` lowest-scoring patches of each image: a random subset of exactly that size.
    rank = scores.argsort(dim=1).argsort(dim=1)
    chosen = (rank < masked.view(n, 1)).view(n, 1, rows, 1, cols, 1)
    pixels = chosen.expand(n, 1, rows, patch_size, cols, patch_size)
    pixels = pixels.reshape(n, 1, rows * patch_size, cols * patch_size)
    mask = F.pad(pixels, (0, w - cols * patch_size, 0, h - rows * patch_size))
    return x.masked_fill(mask, 0)
