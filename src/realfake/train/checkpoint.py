"""Reading checkpoints safely: tensors and plain containers only, never arbitrary pickles."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from realfake.errors import CheckpointError


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a realfake/Lightning checkpoint with ``weights_only=True`` onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"{path} could not be read as a checkpoint with weights_only=True "
            f"(truncated, or not written by realfake): {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} holds no 'state_dict'; it was not written by realfake")
    hp = ckpt.get("hyper_parameters") or {}
    if "classes" not in hp or "config" not in hp:
        raise CheckpointError(
            f"{path} has no class list/config in its hyper-parameters; it was not written by "
            "realfake train"
        )
    return ckpt


def resolve_checkpoint(ref: str | Path) -> Path:
    """A checkpoint file from a path to one, or to a run directory (its best, else last)."""
    path = Path(ref)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"run directory {path} has no checkpoints/best.ckpt or last.ckpt")
    if not path.is_file():
        raise CheckpointError(f"{path} is neither a checkpoint file nor a run directory")
    return path
