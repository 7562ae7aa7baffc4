"""Seeded, pure image perturbations on uint8 N×3×H×W batches, named ``kind:level``.

Each kind is a function ``(images, level, seed) -> images`` of the same shape and dtype that
never modifies its input; only ``noise`` uses the seed. Levels are in the image's own pixels
(blur σ) or relative units (JPEG quality, noise σ as a fraction of 0-255, scale factors). The
default grid follows the common robustness suites for detectors (CNNDetection, Wang et al.
CVPR 2020: JPEG and blur; Hendrycks & Dietterich 2019 for noise, contrast and brightness).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF

from realfake.data.augment import jpeg_roundtrip
from realfake.errors import ConfigError

PerturbFn = Callable[[torch.Tensor, float, int], torch.Tensor]


def jpeg(images: torch.Tensor, quality: float, seed: int = 0) -> torch.Tensor:
    """Re-encode as JPEG at ``quality`` (libjpeg, 4:2:0, as CIFAKE's own files)."""
    return jpeg_roundtrip(images, int(quality))


def blur(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel ±3σ, reflected borders)."""
    h, w = images.shape[-2:]
    # Reflection needs the radius below the image side; ±3σ holds 99.7 % of the kernel's mass.
    radius = max(1, min(math.ceil(3 * sigma), h - 1, w - 1))
    return TF.gaussian_blur(images, [2 * radius + 1] * 2, [float(sigma)] * 2)


def noise(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``sigma`` × 255, rounded and clipped."""
    gen = torch.Generator().manual_seed(seed)
    draw = torch.randn(images.shape, generator=gen).mul_(sigma * 255.0)
    out = images.cpu().float().add_(draw).round_().clamp_(0, 255).to(torch.uint8)
    return out.to(images.device)


def _back_to(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return TF.resize(images, list(size), antialias=True)


def resize(images: torch.Tensor, scale: float, seed: int = 0) -> torch.Tensor:
    """Shrink the sides by ``scale`` (antialiased bilinear) and enlarge back: lost detail."""
    h, w = images.shape[-2:]
    small = TF.resize(images, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)
    return _back_to(small, (h, w))


def brightness(images: torch.Tensor, factor: float, seed: int = 0) -> torch.Tensor:
    """Multiply every pixel by ``factor`` (clipped): < 1 darker, > 1 brighter."""
    return TF.adjust_brightness(images, float(factor))


def contrast(images: torch.Tensor, factor: float, seed: int = 0) -> torch.Tensor:
    """Blend with the image's mean grey by ``factor``: < 1 flatter, > 1 harsher."""
    return TF.adjust_contrast(images, float(factor))


def crop(images: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Keep the central ``fraction`` of each side and enlarge it back to the original size."""
    h, w = images.shape[-2:]
    centre = TF.center_crop(images, [max(1, round(h * fraction)), max(1, round(w * fraction))])
    return _back_to(centre, (h, w))


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
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected uint8 images N×3×H×W, got {images.dtype} {tuple(images.shape)}"
            )
        return KINDS[self.kind].fn(images, self.level, seed)

    def __str__(self) -> str:
        return self.name


def parse_perturbation(text: str) -> Perturbation:
    """``"jpeg:50"`` -> Perturbation('jpeg', 50.0), or a ConfigError saying what would be right."""
    kind_name, sep, level_text = text.strip().partition(":")
    kind = KINDS.get(kind_name.strip().lower())
    if kind is None or not sep:
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
    return Perturbation(kind_name.strip().lower(), level)


def default_grid(kinds: Iterable[str] | None = None) -> list[Perturbation]:
    """Every default level of ``kinds`` (all kinds when None), mildest first within a kind."""
    names = list(KINDS) if kinds is None else list(kinds)
    return [Perturbation(name, level) for name in names for level in KINDS[name].levels]


def parse_grid(specs: Sequence[str] | str | None) -> list[Perturbation]:
    """Perturbations from ``"jpeg:50,blur"``-style specs; a bare kind means its default levels."""
    if specs is None:
        return default_grid()
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    grid: list[Perturbation] = []
    for spec in specs:
        name = spec.strip().lower()
        grid += default_grid([name]) if name in KINDS else [parse_perturbation(spec)]
    if not grid:
        raise ConfigError(f"no perturbations given; known kinds: {known_kinds()}")
    return list(dict.fromkeys(grid))  # drop repeats, keep order
