"""`realfake predict`: label every image of a folder or archive into a CSV."""

from __future__ import annotations

import argparse
import sys

from realfake.atomic import check_writable_file
from realfake.cli._common import add_inference_arguments
from realfake.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="predict labels and probabilities for unlabelled images (CSV)",
        description="Write one CSV row per image file under PATH (folder, .zip, .tar, image "
        "file): filename, label, label_index (the checkpoint's class order, CIFAKE: 0 = FAKE, "
        "1 = REAL), prob_<class> per class, and error (empty unless the file could not be "
        "decoded; such files get a row with the reason and no prediction).",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="run directory or .ckpt file")
    p.add_argument("path", metavar="PATH", help="images to label (any layout; folders ignored)")
    p.add_argument("--out", default="predictions.csv", help="CSV to write (predictions.csv)")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (default: refuse)"
    )
    add_inference_arguments(p)
    p.add_argument(
        "--threshold",
        default=None,
        metavar="P|frozen",
        help="binary models: label positive (FAKE for CIFAKE) when its probability >= P; "
        "'frozen' takes the threshold `realfake evaluate` chose on validation (default: arg-max)",
    )
    p.set_defaults(handler=run)


def _threshold(value: str | None, predictor, tta: bool | None) -> float | None:
    if value is None:
        return None
    if value == "frozen":
        return predictor.frozen_threshold(tta)
    try:
        threshold = float(value)
    except ValueError:
        threshold = -1.0
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold {value}: expected a probability in [0, 1] or 'frozen'")
    return threshold


def run(args: argparse.Namespace) -> int:
    from realfake.inference import load_predictor
    from realfake.inference.table import prediction_table, write_predictions

    # Checked before any inference: an unwritable or existing --out fails in a second, not after.
    out = check_writable_file(args.out, force=args.force, what="--out")
    predictor = load_predictor(args.checkpoint)  # a run, .ckpt, or .onnx (ONNX Runtime)
    predictions = prediction_table(
        predictor,
        args.path,
        batch_size=args.batch_size,
        tta=args.tta,
        threshold=_threshold(args.threshold, predictor, args.tta),
        progress=sys.stderr.isatty(),
    )
    table = predictions.table
    path = write_predictions(table, out)
    errors = table["error"] != ""
    counts = table.loc[~errors, "label"].value_counts()
    summary = ", ".join(f"{n} {label}" for label, n in counts.items())
    print(f"wrote {len(table)} rows to {path}: {summary or 'no readable images'}")
    if errors.any():
        shown = "; ".join(table.loc[errors, "filename"].head(5))
        more = f" and {int(errors.sum()) - 5} more" if errors.sum() > 5 else ""
        print(f"{int(errors.sum())} files could not be read (error rows): {shown}{more}")
    ignored = predictions.ignored
    if ignored:
        shown = "; ".join(ignored[:5]) + (
            f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
        )
        print(f"left out {len(ignored)} non-image file(s), by extension: {shown}")
    return 0
