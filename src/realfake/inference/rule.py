"""The decision rule of a model: arg-max, or a threshold on P(positive) frozen for its weights.

One rule per scorer, resolved once (``resolve_rule``) and used by every surface: evaluate,
predict, robustness, audits, explain, compare, attacks and the service. Each answer carries the
rule's ``describe()`` so a reader knows what turned probabilities into the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realfake.errors import CheckpointError, ConfigError
from realfake.runs import FrozenThreshold, ModelSpec, read_json

# What `--threshold` accepts besides a probability: the run's own rule (default), arg-max, or
# the frozen threshold (an error when there is none).
THRESHOLD_CHOICES = ("run", "argmax", "frozen")


def decide(probs: np.ndarray, threshold: float | None = None, positive: int = 1) -> np.ndarray:
    """Predicted class per row: P(positive) >= threshold when binary and given, else arg-max."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if probs.shape[1] == 2 and threshold is not None:
        return np.where(probs[:, positive] >= threshold, positive, 1 - positive)
    return probs.argmax(1)


@dataclass(frozen=True)
class DecisionRule:
    """How probabilities become a class: P(positive) >= threshold (binary), else the arg-max."""

    threshold: float | None  # None: arg-max
    positive: int | None  # index of the positive class (binary models), else None
    origin: str  # "argmax" | "frozen" | "given"
    reason: str  # why this rule, for people ("no threshold was frozen for these weights")
    frozen: FrozenThreshold | None = None  # set when origin == "frozen"

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Class index per row of probabilities (N×C)."""
        return decide(probs, self.threshold, 1 if self.positive is None else self.positive)

    def describe(self, classes: list[str] | tuple[str, ...]) -> str:
        """One line: the rule and why, e.g. 'P(FAKE) >= 0.4213 (frozen: ...)'."""
        if self.threshold is None:
            return f"arg-max ({self.reason})"
        assert self.positive is not None
        return f"P({classes[self.positive]}) >= {self.threshold:.4f} ({self.reason})"

    def to_dict(self, classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
        """JSON form: what every answer records of the rule that decided it."""
        return {
            "rule": "argmax" if self.threshold is None else "threshold",
            "threshold": self.threshold,
            "positive_class": None if self.positive is None else classes[self.positive],
            "origin": self.origin,
            "reason": self.reason,
            "text": self.describe(classes),
        }


def frozen_for(
    spec: ModelSpec, sha256: str, run_spec: Path | None
) -> tuple[FrozenThreshold | None, str]:
    """The threshold frozen for these weights (spec, else the run's model.json), or why none.

    A threshold belongs to the weights it was chosen for (``checkpoint_sha256``): one frozen for
    best.ckpt never decides for last.ckpt.
    """
    found = spec.threshold
    where = "its metadata"
    if found is None and run_spec is not None:
        saved = read_json(run_spec)
        if saved and saved.get("threshold"):
            found = ModelSpec.from_dict(saved, str(run_spec)).threshold
            where = str(run_spec)
    if found is None:
        return None, "no threshold was frozen for this model"
    if sha256 and found.checkpoint_sha256 != sha256:
        return None, f"the threshold frozen in {where} belongs to other weights"
    return found, ""


def resolve_rule(
    spec: ModelSpec,
    sha256: str,
    run_spec: Path | None,
    tta: bool,
    threshold: str | float | None = None,
    where: str = "the model",
) -> DecisionRule:
    """The rule a scorer decides with; ``threshold``: None/'run', 'argmax', 'frozen' or a float.

    The run's rule ('run') is its frozen threshold when one belongs to these weights, else the
    arg-max. A frozen threshold is never re-chosen and never silently dropped: asking for it
    with the other flip-TTA setting than it was chosen with is a ConfigError.
    """
    positive = spec.positive
    choice = "run" if threshold is None else threshold
    if positive is None:
        if choice not in ("run", "argmax"):
            raise ConfigError(
                f"a threshold applies to two classes; {where} has {list(spec.classes)}"
            )
        return DecisionRule(None, None, "argmax", "multi-class")
    if isinstance(choice, (int, float)) and not isinstance(choice, bool):
        value = float(choice)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"threshold {choice}: expected a probability in [0, 1]")
        return DecisionRule(value, positive, "given", "given on the command line")
    if choice not in THRESHOLD_CHOICES:
        raise ConfigError(
            f"threshold {choice!r}: expected a probability in [0, 1] or one of "
            f"{', '.join(THRESHOLD_CHOICES)}"
        )
    if choice == "argmax":
        return DecisionRule(None, positive, "argmax", "as asked")
    frozen, why_not = frozen_for(spec, sha256, run_spec)
    if frozen is None:
        if choice == "frozen":
            raise CheckpointError(
                f"{where}: {why_not}; freeze one with `realfake evaluate RUN --freeze-threshold "
                "accuracy` or decide by arg-max"
            )
        return DecisionRule(None, positive, "argmax", why_not)
    if frozen.tta != tta:
        raise ConfigError(tta_mismatch(frozen, where))
    return DecisionRule(frozen.value, positive, "frozen", f"frozen: {frozen.source}", frozen)


def tta_mismatch(frozen: FrozenThreshold, where: str) -> str:
    """The one sentence every surface gives when TTA differs from the frozen threshold's."""
    on = "on" if frozen.tta else "off"
    return (
        f"the threshold frozen for {where} was chosen with flip TTA {on}; score with flip TTA "
        f"{on} (--{'' if frozen.tta else 'no-'}tta) or decide by arg-max (--threshold argmax)"
    )
