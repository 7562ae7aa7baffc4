"""FGSM and PGD under an L∞ budget, on float pixels in [0, 1], as their papers define them.

Every attack takes ``loss(pixels, labels) -> one loss per image``, differentiable in the pixels,
and returns adversarial pixels ``x'`` with ``|x' - x| <= ε`` in every pixel and ``x'`` in [0, 1]:

  fgsm     Goodfellow et al., ICLR 2015: x' = clip(x + ε·sign(∇ₓ loss), 0, 1).
  pgd      Madry et al., ICLR 2018: from x (or a uniform random start in the ε-ball), ``steps``
           times x' ← Π(x' + α·sign(∇ loss(x'))), Π the projection onto the ε-ball around x and
           onto [0, 1]; the last iterate is returned. Defaults: 20 steps of α = 2.5·ε/20 (their
           rule α = 2.5·ε/steps: enough to cross the ball from any start), random start.
           Twenty steps, not ten: on a CIFAKE model (cifake_fast, 2 epochs, 2,000 test images)
           10 steps of 2.5·ε/10 left 21 images right at ε = 4/255 and 32 at ε = 8/255 (the
           steps overshoot), 20 steps left 13 and 8, so accuracy falls with ε as it must.
  fgsm_rs  Wong, Rice & Kolter, ICLR 2020 ("Fast is better than free"): PGD of one step of
           α = 1.25·ε from a uniform random start, their fast adversarial training.

ε and α are given in 1/255 units of the pixel range (``pgd:4`` is ε = 4/255), the unit of an 8-bit
image. Gradients are taken with respect to the pixels only (``torch.autograd.grad``), so no
parameter's ``.grad`` is touched; the random start draws from ``generator`` when given (on its
device), else from the global generator of the pixels' device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from realfake.data.perturbations import split_spec
from realfake.errors import ConfigError

# (pixels N×3×H×W in [0, 1], labels N) -> loss per image (N,), differentiable in the pixels.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_gradient_sign(loss: LossFn, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sign(∇ₓ Σ loss(x, labels)): each image's own gradient sign (images are independent)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(x, labels).sum(), x)
    return grad.sign()


def fgsm(loss: LossFn, x: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method: clip(x + ε·sign(∇ₓ loss), 0, 1), ε in [0, 1] pixel units."""
    x = x.detach()
    return (x + eps * loss_gradient_sign(loss, x, labels)).clamp(0, 1)


def pgd(
    loss: LossFn,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent (ascent on the loss) in the L∞ ball of radius ε around x.

    ε and α in [0, 1] pixel units. With one step of α = ε and no random start it is FGSM.
    """
    x = x.detach()
    low, high = x - eps, x + eps
    adv = x
    if random_start:
        device = generator.device if generator is not None else x.device
        start = torch.rand(x.shape, generator=generator, device=device).to(x.device)
        adv = (x + start.mul_(2 * eps).sub_(eps)).clamp(0, 1)
    for _ in range(steps):
        adv = adv + alpha * loss_gradient_sign(loss, adv, labels)
        adv = torch.minimum(torch.maximum(adv, low), high).clamp(0, 1)
    return adv


@dataclass(frozen=True)
class AttackKind:
    title: str
    steps: int  # default number of steps
    step: Callable[[float, int], float]  # (ε, steps) -> default step size α
    random_start: bool
    defaults: str  # the defaults in words, ε standing for the radius
    reference: str


ATTACKS: dict[str, AttackKind] = {
    "fgsm": AttackKind("FGSM", 1, lambda eps, steps: eps, False, "one step of ε",
                       "Goodfellow et al. 2015"),
    "pgd": AttackKind("PGD", 20, lambda eps, steps: 2.5 * eps / steps, True,
                      "20 steps of α = 2.5·ε/20 from a random start", "Madry et al. 2018"),
    "fgsm_rs": AttackKind("FGSM with random start", 1, lambda eps, steps: 1.25 * eps, True,
                          "one step of α = 1.25·ε from a random start", "Wong et al. 2020"),
}  # fmt: skip
DEFAULT_EPS = (1, 2, 4, 8)  # ε in 1/255: a bare ``pgd`` in a grid means all four
MAX_EPS = 255


@dataclass(frozen=True)
class Attack:
    """One white-box L∞ attack: ``kind`` at radius ``eps``, steps of ``alpha`` (both /255)."""

    kind: str
    eps: float
    steps: int
    alpha: float
    random_start: bool

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.eps:g}"

    @property
    def level(self) -> float:
        """The radius ε in 1/255 (what orders a kind's grid entries)."""
        return self.eps

    def describe(self) -> str:
        """e.g. 'PGD, L∞ ε = 4/255, 20 steps of α = 0.5/255, random start (Madry et al. 2018)'."""
        kind = ATTACKS[self.kind]
        steps = "1 step" if self.steps == 1 else f"{self.steps} steps"
        start = "random start" if self.random_start else "no random start"
        return (
            f"{kind.title}, L∞ ε = {self.eps:g}/255, {steps} of α = {self.alpha:g}/255, {start} "
            f"({kind.reference})"
        )

    def __call__(
        self,
        loss: LossFn,
        x: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Adversarial pixels (float, [0, 1]) of ``x`` (float, [0, 1]) against ``loss``."""
        eps, alpha = self.eps / 255, self.alpha / 255
        if self.kind == "fgsm" and self.steps == 1 and self.alpha == self.eps:
            return fgsm(loss, x, labels, eps)
        return pgd(loss, x, labels, eps, alpha, self.steps, self.random_start, generator)

    def __str__(self) -> str:
        return self.name


def make_attack(
    kind: str, eps: float, steps: int | None = None, alpha: float | None = None
) -> Attack:
    """``kind`` at ε (/255) with its paper's steps and step size unless given."""
    if kind not in ATTACKS:
        raise ConfigError(f"unknown attack {kind!r}; expected one of {', '.join(ATTACKS)}")
    spec = ATTACKS[kind]
    if not 0 < eps <= MAX_EPS:
        raise ConfigError(f"attack {kind}: ε = {eps:g}/255 is out of range; expected (0, 255]")
    if steps is not None and kind != "pgd" and steps != 1:
        raise ConfigError(f"attack {kind} takes one step (got steps={steps}); steps apply to pgd")
    n = spec.steps if steps is None else int(steps)
    if n < 1:
        raise ConfigError(f"attack {kind}: steps={steps}; expected an integer >= 1")
    step = spec.step(eps, n) if alpha is None else float(alpha)
    if not step > 0:
        raise ConfigError(f"attack {kind}: step size α = {alpha}; expected a number > 0 (/255)")
    return Attack(kind, float(eps), n, step, spec.random_start)


def known_attacks() -> str:
    """One line naming each attack with its defaults, for error messages and help."""
    return "; ".join(f"{name}:EPS ({k.defaults}; {k.reference})" for name, k in ATTACKS.items())


def parse_attack(text: str) -> Attack:
    """``"pgd:4"`` -> PGD at ε = 4/255 with its default steps; ConfigError saying what is wrong.

    EPS is a whole number of 1/255 steps in [1, 255]: an attacked image is stored as 8-bit
    pixels, so a fractional radius could not be kept once rounded.
    """
    kind, level = split_spec(text)
    if kind not in ATTACKS or level is None:
        problem = f"unknown attack '{kind}'" if kind not in ATTACKS else "no ε"
        raise ConfigError(
            f"attack '{text}': {problem}; expected KIND:EPS such as pgd:4 (EPS in 1/255 of "
            f"the pixel range). Attacks: {known_attacks()}"
        )
    try:
        eps = float(level)
    except ValueError:
        eps = -1.0
    if not (math.isfinite(eps) and eps == int(eps) and 1 <= eps <= MAX_EPS):
        raise ConfigError(
            f"attack '{text}': ε '{level}' is not an integer in [1, {MAX_EPS}]; expected "
            "KIND:EPS such as pgd:4, EPS in 1/255 of the pixel range (attacked images are stored "
            "as whole 8-bit steps)"
        )
    return make_attack(kind, int(eps))


def parse_attacks(text: str) -> list[Attack]:
    """``"pgd"`` -> PGD at each default ε (1, 2, 4, 8); ``"pgd:4"`` -> that one."""
    kind, level = split_spec(text)
    if kind in ATTACKS and level is None:
        return [make_attack(kind, eps) for eps in DEFAULT_EPS]
    return [parse_attack(text)]
