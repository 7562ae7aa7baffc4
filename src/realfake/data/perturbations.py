"""Image perturbations of uint8 N×3×H×W batches, shared by the robustness grid and robust training.

Each kind is a function ``(images, level, generator=None) -> images`` that returns a new uint8
batch of the same shape and never modifies its input. ``level`` is one number for every image or
a 1-D tensor of one level per image; ``generator`` feeds the kinds that draw random numbers (only
noise), the others are deterministic. The level of each kind means (the ``unit`` of ``KINDS``):

  jpeg        JPEG quality, an integer 1..100 (Pillow's libjpeg, 4:2:0, as CIFAKE's own files)
  blur        Gaussian σ in pixels of the image (0 leaves it unchanged)
  noise       noise σ as a fraction of 255
  resize      down-scale factor of each side in (0, 1], then back up
  brightness  brightness factor (1 leaves the image unchanged)
  contrast    contrast factor (1 leaves the image unchanged)
  crop        kept central fraction of each side in (0, 1], resized back

The grid names one kind at one level ``kind:level`` (``Perturbation``); robust training draws a
level per image (``realfake.data.augment``). The default grid follows the common robustness
suites for detectors (CNNDetection, Wang et al. CVPR 2020: JPEG and blur; Hendrycks & Dietterich
2019 for noise, contrast and brightness).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from realfake.errors import ConfigError

Level = float | torch.Tensor
PerturbFn = Callable[[torch.Tensor, Level, torch.Generator | None], torch.Tensor]


def _check_images(images: torch.Tensor) -> None:
    """Raise ValueError unless ``images`` is a uint8 N×3×H×W batch."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images N×3×H×W, got {images.dtype} {tuple(images.shape)}")


def _levels(images: torch.Tensor, level: Level) -> torch.Tensor:
    """One float32 level per image of a checked batch, on the batch's device."""
    _check_images(images)
    n = images.shape[0]
    levels = torch.as_tensor(level, dtype=torch.float32, device=images.device)
    if levels.ndim == 0:
        return levels.expand(n)
    if levels.shape != (n,):
        raise ValueError(f"got {tuple(levels.shape)} levels for {n} images; expected one or {n}")
    return levels


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


def jpeg(
    images: torch.Tensor, quality: Level, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Re-encode each image as JPEG at its quality (``jpeg_roundtrip``)."""
    return jpeg_roundtrip(images, [int(q) for q in _levels(images, quality).tolist()])


def blur(
    images: torch.Tensor, sigma: Level, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian blur, each image with its own σ, rounded back to uint8.

    Per-image separable kernels in one grouped convolution (a group per image and channel) of
    radius ceil(3σ) of the largest σ, with reflected borders as torchvision's gaussian_blur. Each
    image's kernel is cut at its own ±ceil(3σ) (99.7 % of its mass), so an image comes out as it
    would blurred alone.
    """
    levels = _levels(images, sigma)
    n, c, h, w = images.shape
    top = float(levels.max()) if n else 0.0
    if top <= 0:
        return images.clone()

    def radius_of(s: torch.Tensor | float) -> torch.Tensor:  # reflection needs it below the side
        return torch.as_tensor(s).mul(3).ceil().clamp(1, max(1, min(h - 1, w - 1)))

    radius = int(radius_of(top))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    # σ → 0 gives a unit impulse (exp(-huge) = 0 off-centre): the image is left as it is.
    s = levels.clamp_min(1e-3).view(-1, 1)
    kernel = torch.exp(-0.5 * (offsets / s) ** 2)
    kernel = kernel.masked_fill_(offsets.abs() > radius_of(levels).view(-1, 1), 0.0)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)
    k = 2 * radius + 1
    y = images.float().reshape(1, n * c, h, w)
    y = F.conv2d(
        F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel.view(-1, 1, 1, k), groups=n * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel.view(-1, 1, k, 1), groups=n * c
    )
    return y.view(n, c, h, w).round_().clamp_(0, 255).to(torch.uint8)


def noise(
    images: torch.Tensor, sigma: Level, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise of each image's σ, rounded and clipped.

    The standard normal draw covers the whole batch (from ``generator``, on its device, else from
    the global generator), so images of level 0 consume draws too and stay unchanged.
    """
    levels = _levels(images, sigma)
    device = generator.device if generator is not None else images.device
    draw = torch.randn(images.shape, generator=generator, device=device).to(images.device)
    draw.mul_(levels.mul(255.0).view(-1, 1, 1, 1))
    return images.float().add_(draw).round_().clamp_(0, 255).to(torch.uint8)


def _regroup(
    images: torch.Tensor,
    fractions: Level,
    transform: Callable[[torch.Tensor, list[int]], torch.Tensor],
) -> torch.Tensor:
    """Each image through ``transform(images, [h', w'])``, h'×w' its sides times its fraction.

    Images landing on the same integer size go through together; those that keep their full
    size are left as they are.
    """
    levels = _levels(images, fractions)
    h, w = images.shape[-2:]
    sizes = [(max(1, round(h * f)), max(1, round(w * f))) for f in levels.tolist()]
    out = images.clone()
    for size in sorted(set(sizes) - {(h, w)}):
        rows = [i for i, s in enumerate(sizes) if s == size]
        index = torch.tensor(rows, device=images.device)
        out[index] = transform(images[index], list(size))
    return out


def _tv_functional():
    """torchvision's uint8 resizing, imported on first use: importing torchvision costs ~3 s
    (it loads its model zoo), which the predictor, a service, should not pay."""
    import torchvision.transforms.v2.functional as TF

    return TF


def resize(
    images: torch.Tensor, scale: Level, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shrink each image's sides by its factor (antialiased bilinear) and enlarge back."""
    TF = _tv_functional()
    h, w = images.shape[-2:]
    return _regroup(
        images,
        scale,
        lambda x, size: TF.resize(TF.resize(x, size, antialias=True), [h, w], antialias=True),
    )


def crop(
    images: torch.Tensor, fraction: Level, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Keep the central part of each image and enlarge it back to the original size."""
    TF = _tv_functional()
    h, w = images.shape[-2:]
    return _regroup(
        images,
        fraction,
        lambda x, size: TF.resize(TF.center_crop(x, size), [h, w], antialias=True),
    )


def brightness(
    images: torch.Tensor, factor: Level, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Every pixel times the image's factor, clipped (and truncated, as torchvision)."""
    levels = _levels(images, factor).view(-1, 1, 1, 1)
    return images.mul(levels).clamp_(0, 255).to(torch.uint8)


def contrast(
    images: torch.Tensor, factor: Level, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Blend each image with its mean grey by its factor, as torchvision's adjust_contrast."""
    levels = _levels(images, factor).view(-1, 1, 1, 1)
    r, g, b = images.unbind(1)
    grey = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_()
    mean = grey.mean(dim=(-2, -1)).view(-1, 1, 1, 1)
    # image·f + mean·(1 - f) with (1 - f) in double and a fused multiply-add: torchvision's
    # _blend to the bit for one factor.
    weight = (1.0 - levels.double()).float()
    return images.mul(levels).addcmul_(mean, weight).clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Kind:
    fn: PerturbFn
    levels: tuple[float, ...]  # the default grid, milder levels first
    unit: str  # what the level means, for messages and tables
    low: float  # allowed levels: low < level <= high (low <= level when low_inclusive)
    high: float
    low_inclusive: bool = False
    integer: bool = False
    identity: float = 0.0  # the level that changes nothing; severity is the distance from it
    log_scale: bool = False  # factors: 0.5 and 2 are equally far from 1

    def allows(self, level: float) -> bool:
        above = level >= self.low if self.low_inclusive else level > self.low
        return above and level <= self.high and (not self.integer or level == int(level))

    def describe_range(self) -> str:
        left = "[" if self.low_inclusive else "("
        kind = "an integer" if self.integer else "a number"
        high = "∞" if math.isinf(self.high) else f"{self.high:g}"
        return f"{kind} in {left}{self.low:g}, {high}]"


KINDS: dict[str, Kind] = {
    # Quality 75 is how CIFAKE was saved; 95 is near-lossless, 30 is heavy social-media level.
    # (100 is the identity for severity only: 4:2:0 chroma subsampling still changes pixels.)
    "jpeg": Kind(jpeg, (95, 75, 50, 30), "JPEG quality", 1, 100, True, True, identity=100),
    "blur": Kind(blur, (0.5, 1, 2), "Gaussian σ in pixels", 0, math.inf),
    "noise": Kind(noise, (0.02, 0.05, 0.1), "noise σ as a fraction of 255", 0, 1),
    "resize": Kind(resize, (0.75, 0.5), "down-scale factor, then back up", 0, 1, identity=1),
    # Brightness moves every pixel, so its mild levels are nearer 1 than contrast's.
    "brightness": Kind(brightness, (0.9, 1.1, 0.7, 1.3), "brightness factor", 0, math.inf,
                       identity=1, log_scale=True),
    "contrast": Kind(contrast, (0.7, 1.3), "contrast factor", 0, math.inf, identity=1,
                     log_scale=True),
    "crop": Kind(crop, (0.9, 0.8), "kept central fraction of each side, resized back", 0, 1,
                 identity=1),
}  # fmt: skip


def known_kinds() -> str:
    """One line listing every kind, its unit and default levels, for error messages and help."""
    return "; ".join(
        f"{name} ({kind.unit}, e.g. {', '.join(f'{lv:g}' for lv in kind.levels)})"
        for name, kind in KINDS.items()
    )


@dataclass(frozen=True)
class Perturbation:
    """One kind at one level, e.g. ``jpeg:50``; call it on a uint8 batch."""

    kind: str
    level: float

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.level:g}"

    @property
    def severity(self) -> float:
        """Distance of the level from the identity (log ratio for factors): orders the levels."""
        spec = KINDS[self.kind]
        if spec.log_scale:
            return abs(math.log(self.level / spec.identity))
        return abs(self.level - spec.identity)

    def __call__(self, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """The perturbed batch; ``seed`` seeds a CPU generator for the kinds that draw (noise)."""
        return KINDS[self.kind].fn(images, self.level, torch.Generator().manual_seed(seed))

    def __str__(self) -> str:
        return self.name


def split_spec(text: str) -> tuple[str, str | None]:
    """``"JPEG:50"`` -> ('jpeg', '50'); ``"blur"`` -> ('blur', None): the one reading of the
    KIND:LEVEL specs of perturbations and attacks (the callers check kinds and levels)."""
    kind, sep, level = text.strip().partition(":")
    return kind.strip().lower(), level.strip() if sep else None


def split_specs(specs: Sequence[str] | str) -> list[str]:
    """A comma-separated list of specs (or a sequence of them), blanks dropped."""
    items = specs.split(",") if isinstance(specs, str) else specs
    return [s.strip() for s in items if s.strip()]


def parse_perturbation(text: str) -> Perturbation:
    """``"jpeg:50"`` -> Perturbation('jpeg', 50.0), or a ConfigError saying what would be right."""
    kind_name, level_text = split_spec(text)
    kind = KINDS.get(kind_name)
    if kind is None or level_text is None:
        problem = f"unknown kind '{kind_name}'" if kind is None else "no level"
        raise ConfigError(
            f"perturbation '{text}': {problem}; expected KIND:LEVEL such as jpeg:50. "
            f"Known kinds: {known_kinds()}"
        )
    try:
        level = float(level_text)
    except ValueError:
        raise ConfigError(
            f"perturbation '{text}': level '{level_text}' is not a number; expected "
            f"{kind.describe_range()} ({kind.unit})"
        ) from None
    if not kind.allows(level):
        raise ConfigError(
            f"perturbation '{text}': level {level:g} is out of range; expected "
            f"{kind.describe_range()} ({kind.unit})"
        )
    return Perturbation(kind_name, level)


def default_grid(kinds: Iterable[str] | None = None) -> list[Perturbation]:
    """Every default level of ``kinds`` (all kinds when None), mildest first within a kind."""
    names = list(KINDS) if kinds is None else list(kinds)
    return [Perturbation(name, level) for name in names for level in KINDS[name].levels]


def parse_grid(specs: Sequence[str] | str | None) -> list[Perturbation]:
    """Perturbations from ``"jpeg:50,blur"``-style specs; a bare kind means its default levels."""
    if specs is None:
        return default_grid()
    grid: list[Perturbation] = []
    for spec in split_specs(specs):
        name, level = split_spec(spec)
        grid += (
            default_grid([name]) if name in KINDS and level is None else [parse_perturbation(spec)]
        )
    if not grid:
        raise ConfigError(f"no perturbations given; known kinds: {known_kinds()}")
    return list(dict.fromkeys(grid))  # drop repeats, keep order
