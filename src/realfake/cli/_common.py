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


MODEL_HELP = "a run directory (its best, else last checkpoint), a .ckpt or an exported .onnx file"


def add_model_argument(p: argparse.ArgumentParser, several: bool = False) -> None:
    """The positional naming the model, with one name on every command: RUN."""
    if several:
        p.add_argument("models", nargs="+", metavar="RUN", help=f"{MODEL_HELP}; several allowed")
    else:
        p.add_argument("model", metavar="RUN", help=MODEL_HELP)


def add_scorer_arguments(p: argparse.ArgumentParser, threshold: bool = True) -> None:
    """--device, --tta/--no-tta, --batch-size and --threshold: what builds the Scorer."""
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, mps ... (cpu)")
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
    if threshold:
        p.add_argument(
            "--threshold",
            type=threshold_choice,
            default=None,
            metavar="run|argmax|frozen|P",
            help="binary models' decision rule: run (default: the threshold frozen for these "
            "weights by `realfake evaluate --freeze-threshold`, else the arg-max), argmax, "
            "frozen (fail when there is none), or P: positive (FAKE for CIFAKE) when its "
            "probability >= P",
        )


def threshold_choice(text: str) -> str | float:
    """argparse type: run, argmax, frozen, or a probability in [0, 1]."""
    from realfake.inference.rule import THRESHOLD_CHOICES

    if text in THRESHOLD_CHOICES:
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a probability in [0, 1] or one of {', '.join(THRESHOLD_CHOICES)}"
        )
    return value


def open_scorer(args: argparse.Namespace, ref: str | Path, **overrides):
    """The Scorer a command's arguments ask for (built once, passed to every consumer)."""
    from realfake.inference import Scorer

    options = {
        "device": args.device,
        "tta": args.tta,
        "batch_size": args.batch_size,
        "threshold": getattr(args, "threshold", None),
        **overrides,
    }
    return Scorer.open(ref, **options)
