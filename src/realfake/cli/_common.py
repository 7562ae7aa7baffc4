"""Arguments shared by the commands that run a trained model over images."""

from __future__ import annotations

import argparse


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """--tta/--no-tta (default: the run's own choice) and --batch-size."""
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average with the horizontally flipped image (default: as the run was validated, "
        "trainer.flip_tta)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (256)")
