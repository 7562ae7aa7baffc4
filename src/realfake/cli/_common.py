"""Arguments and paths shared by the commands that run a trained model over images."""

from __future__ import annotations

import argparse
from pathlib import Path


def output_root(checkpoint: str | Path) -> Path:
    """Where a command's files about a checkpoint go by default: its run, else its folder."""
    from realfake.runs import resolve_checkpoint

    path, run = resolve_checkpoint(checkpoint)
    return run.path if run is not None else path.parent


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds, counts where 0 means none)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return value


def device(text: str) -> str:
    """argparse type: a torch device that exists here (cpu, cuda, cuda:1, mps)."""
    if text == "cpu":
        return text
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device; expected cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r}: no CUDA GPU is available here; use cpu")
        if dev.index is not None and dev.index >= count:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no Apple GPU (MPS) is available here; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda, cuda:N or mps")
    return text


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """--tta/--no-tta (default: the run's own choice) and --batch-size."""
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average with the horizontally flipped image (default: as the run was validated, "
        "trainer.flip_tta)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=256, help="images per forward pass (256)"
    )
