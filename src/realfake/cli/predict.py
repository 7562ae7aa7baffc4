"""`realfake predict`: label every image of a folder or archive into a CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realfake.atomic import check_writable_file
from realfake.cli._common import add_model_argument, add_scorer_arguments, open_scorer


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="predict labels and probabilities for unlabelled images (CSV)",
        description="Write one CSV row per image file under PATH (folder, .zip, .tar, image "
        "file): filename, label, label_index (the checkpoint's class order, CIFAKE: 0 = FAKE, "
        "1 = REAL), prob_<class> per class, verdict (the label, or UNSURE near the frozen "
        "threshold or for images unlike the training images) with its reason, and error (empty "
        "unless the file could not be decoded; such files get a row with the reason and no "
        "prediction). Beside it, OUT.meta.json records the model and the decision rule, and a "
        "one-page HTML summary (counts, the most confident and most uncertain images with "
        "thumbnails, what the verdicts mean) is written to --summary.",
    )
    add_model_argument(p)
    p.add_argument("path", metavar="PATH", help="images to label (any layout; folders ignored)")
    p.add_argument("--out", default="predictions.csv", help="CSV to write (predictions.csv)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out and --summary if they exist (default: refuse)",
    )
    page = p.add_mutually_exclusive_group()
    page.add_argument(
        "--summary",
        metavar="PATH",
        help="the HTML summary page to write (default: OUT's name with .html, beside it)",
    )
    page.add_argument("--no-summary", action="store_true", help="write no HTML summary page")
    p.add_argument(
        "--source-level",
        type=int,
        metavar="N",
        help="each image's source (a generator, a camera) is the folder at level N of its path "
        "under PATH (0: the top folder): a source column in the CSV, and verdicts counted per "
        "source on the console and the summary page",
    )
    add_scorer_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from realfake.inference.summary import write_summary
    from realfake.inference.table import prediction_table, verdicts_by_source, write_predictions

    # Checked before any inference: an unwritable or existing --out fails in a second, not after.
    out = check_writable_file(args.out, force=args.force, what="--out")
    page = None if args.no_summary else summary_path(out, args.summary, args.force)
    scorer = open_scorer(args, args.model)  # a run, .ckpt, or .onnx (ONNX Runtime)
    predictions = prediction_table(
        scorer, args.path, progress=sys.stderr.isatty(), source_level=args.source_level
    )
    table = predictions.table
    path, meta = write_predictions(table, out, scorer)
    errors = table["error"] != ""
    counts = table.loc[~errors, "verdict"].value_counts()
    summary = ", ".join(f"{n} {label}" for label, n in counts.items())
    print(f"wrote {len(table)} rows to {path}: {summary or 'no readable images'}")
    if "source" in table.columns:
        for source, row in verdicts_by_source(table).iterrows():
            said = ", ".join(f"{n} {verdict}" for verdict, n in row.items() if n)
            print(f"  {source}: {said}")
    print(f"decision: {scorer.describe_rule()} (recorded in {meta.name})")
    if page is not None:
        print(f"summary page: {write_summary(table, scorer, args.path, page)}")
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


def summary_path(out: Path, given: str | None, force: bool) -> Path:
    """Where the HTML summary goes (``given``, else beside ``out``), checked to be writable."""
    from realfake.errors import OutputError

    path = Path(given) if given else out.with_name(f"{out.stem}.html")
    meta = out.with_name(f"{out.stem}.meta.json")  # the name write_predictions gives it
    for other, what in ((out, "--out"), (meta, "the .meta.json beside --out")):
        if path.resolve() == other.resolve():
            raise OutputError(
                f"--summary {path} is the same file as {what}; give another --summary path"
            )
    return check_writable_file(path, force=force, what="--summary")
