"""Arguments and paths shared by the commands that run a trained model over images."""

from __future__ import annotations

import argparse
from pathlib import Path


def output_root(checkpoint: str | Path) -> Path:
    """Where a command's files about a checkpoint go by default: its run, else its folder."""
    from realfake.runs import resolve_checkpoint

    path, run = resolve_checkpoint(checkpoint)
    return run.path if run is not None else path.parent


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
