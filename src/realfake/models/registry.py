"""A name → builder registry, as in timm: every model the project can train is built by name."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable
from typing import Any

from torch import nn

from realfake.errors import RealfakeError

ModelBuilder = Callable[..., nn.Module]

_BUILDERS: dict[str, ModelBuilder] = {}

# Options every model takes, set by the data (input channels, size) and by the model config's own
# keys; the rest of a model's options are its own (e.g. fastnet's width), given as model.options.
# Every model also takes `input_transform` (realfake.models.residuals), given as model.options
# like the others since its default differs: None for most, "npr" for npr_resnet.
COMMON_OPTIONS = frozenset(
    {"in_channels", "image_size", "stem", "dropout", "block_dropout", "zero_init_residual"}
)


class ModelError(RealfakeError, ValueError):
    """A model name, or an option given to a model, is unknown or impossible."""


def register_model(name: str, builder: ModelBuilder) -> ModelBuilder:
    """Register `builder(num_classes, **options) -> nn.Module` under `name`; return the builder."""
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is already registered")
    _BUILDERS[name] = builder
    return builder


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names in sorted order, optionally filtered by a shell-style pattern."""
    names = sorted(_BUILDERS, key=_natural_key)
    return names if pattern is None else fnmatch.filter(names, pattern)


def model_options(name: str) -> dict[str, Any]:
    """The options model `name` takes (its builder's named parameters after num_classes)."""
    parameters = list(inspect.signature(_builder(name)).parameters.values())[1:]
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in parameters if p.kind in named}


def own_options(name: str) -> dict[str, Any]:
    """The options only model `name` takes (not in COMMON_OPTIONS), with their defaults."""
    return {k: v for k, v in model_options(name).items() if k not in COMMON_OPTIONS}


def build_model(name: str, num_classes: int, **options: Any) -> nn.Module:
    """A freshly initialised model `name` mapping N×C×H×W images to N×num_classes logits."""
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    takes_any = any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(_BUILDERS[name]).parameters.values()
    )
    if unknown and not takes_any:
        raise ModelError(
            f"model {name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(accepted)}"
        )
    try:
        return _BUILDERS[name](num_classes, **options)
    except ValueError as exc:  # impossible values, raised by the model classes themselves
        raise ModelError(f"{name}: {exc}") from exc


def _builder(name: str) -> ModelBuilder:
    if name in _BUILDERS:
        return _BUILDERS[name]
    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ";"
    raise ModelError(f"unknown model {name!r}{hint} Known: {', '.join(list_models())}")


def _natural_key(name: str) -> list[int | str]:
    """Sort key under which resnet18 < resnet34 < resnet101."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
