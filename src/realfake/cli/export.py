"""`realfake export`: write a trained model as one ONNX graph for ONNX Runtime."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from realfake.atomic import check_writable_file

FORMATS = ("onnx",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX (normalisation, network, softmax in one graph)",
        description="Write the model of a run directory or .ckpt file as an ONNX graph that "
        "takes uint8 RGB images N×3×S×S (S: the run's image size, N: any batch) and returns "
        "class probabilities; the model spec (classes, preprocessing, positive class, frozen "
        "threshold) goes into its metadata. `realfake predict MODEL.onnx ...` runs it with ONNX "
        "Runtime. Needs the onnx extra: pip install 'realfake[onnx]'.",
    )
    p.add_argument(
        "model",
        metavar="RUN",
        help="a run directory (its best, else last checkpoint) or a .ckpt file",
    )
    p.add_argument("--format", choices=FORMATS, default="onnx", help="output format (onnx)")
    p.add_argument("--out", default="model.onnx", help="file to write (model.onnx)")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (default: refuse)"
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="put flip TTA (the mirror image's average) into the graph (default: as the run "
        "was validated, trainer.flip_tta)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from realfake.export.onnx import export_onnx
    from realfake.inference.onnx import OnnxPredictor

    if not args.verbose:  # the exporter's optimiser logs each of its passes at INFO
        for name in ("onnxscript", "onnx_ir"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # Checked before loading or tracing anything: an existing --out fails at once.
    out = check_writable_file(args.out, force=args.force, what="--out")
    try:
        with _sigterm_unwinds():
            path = export_onnx(args.model, out, tta=args.tta)
    except (_Terminated, KeyboardInterrupt) as stop:
        name = "SIGTERM" if isinstance(stop, _Terminated) else "Ctrl-C"
        print(f"export stopped ({name}); {out} is as it was", file=sys.stderr)
        return 143 if isinstance(stop, _Terminated) else 130
    exported = OnnxPredictor.load(path)
    spec = exported.spec
    threshold = (
        f"frozen threshold {spec.threshold.value:.4f} (chosen with TTA "
        f"{'on' if spec.threshold.tta else 'off'})"
        if spec.threshold is not None
        else "no frozen threshold"
    )
    size_mb = path.stat().st_size / 1e6
    print(
        f"wrote {path} ({size_mb:.1f} MB): {spec.model}, classes {', '.join(spec.classes)}, "
        f"uint8 N×3×{spec.image_size}×{spec.image_size}, flip TTA "
        f"{'on' if spec.flip_tta else 'off'}, {threshold}"
    )
    return 0


class _Terminated(BaseException):
    """SIGTERM during an export, raised where the export is, as Ctrl-C raises KeyboardInterrupt.

    A BaseException, so the exporter's ``except Exception`` cannot swallow it; unwinding runs
    every ``finally``, the one that removes the temporary ``.part`` file among them.
    """


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises ``_Terminated`` inside the block (the default would kill at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (an embedding program's business)
        return

    def stop(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
