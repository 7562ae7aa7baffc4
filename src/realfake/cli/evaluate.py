"""`realfake evaluate`: score a run or checkpoint on labelled images; metrics, figures, report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from realfake.cli._common import add_inference_arguments, non_negative_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="metrics, figures and report of a trained run on labelled images",
        description="Evaluate a run directory (its best checkpoint) or a checkpoint file. Default "
        "data: the run's own test split, rebuilt exactly. --data takes any labelled source "
        "(folder, split tree, .zip, .tar, .csv) whose class names match the model's. Binary "
        "models decide with a threshold chosen on the run's validation split (maximum accuracy "
        "by default), frozen and stored in metrics.json; the arg-max accuracy is reported too.",
    )
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="run directory or .ckpt file")
    p.add_argument("--data", metavar="PATH", help="labelled images (default: the run's data)")
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default=None,
        help="split of the run's data or of a split tree (default test); a plain "
        "<class>/<image> folder is used whole",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where metrics.json and figures/ go (default: the run directory for its own test "
        "split, RUN/evaluations/<data>-<split>/ otherwise)",
    )
    add_inference_arguments(p)
    p.add_argument(
        "--threshold-criterion",
        choices=("accuracy", "youden"),
        default="accuracy",
        help="what the validation threshold maximises: accuracy (default) or Youden's J",
    )
    p.add_argument(
        "--resamples",
        type=non_negative_int,
        default=1000,
        help="bootstrap resamples for the 95%% CIs (1000; 0 skips them)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="bootstrap seed (0)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from realfake.evaluate.evaluation import evaluate

    result = evaluate(
        args.run,
        data=args.data,
        split=args.split,
        out=args.out,
        batch_size=args.batch_size,
        tta=args.tta,
        criterion=args.threshold_criterion,
        n_resamples=args.resamples,
        seed=args.seed,
        figures=not args.no_figures,
        progress=sys.stderr.isatty(),
    )
    print_evaluation(result.record)
    print(f"wrote {result.out_dir / 'metrics.json'}")
    if result.figures:
        print(f"figures: {', '.join(str(p) for p in result.figures.values())}")
    if result.report:
        print(f"report: {result.report} (and {result.report.with_suffix('.html').name})")
    return 0


def print_evaluation(record: dict[str, Any]) -> None:
    """Headline metrics, per-class metrics and the confusion matrix as rich tables."""
    from rich.console import Console
    from rich.table import Table

    from realfake.evaluate.markup import fmt
    from realfake.evaluate.report import PER_CLASS_HEADER, headline_rows, per_class_rows

    m = record["metrics"]
    console = Console()
    threshold = record["threshold"]
    decision = (
        "arg-max"
        if threshold is None
        else f"P({m['positive_class']}) >= {threshold:.4f}, {record['threshold_source']}"
    )
    console.print(f"[bold]{record['data']}[/bold]: {record['images']} images; decision {decision}")
    headline = Table("metric", "value", "95% CI", title="metrics")
    for row in headline_rows(m):
        headline.add_row(*(fmt(c) for c in row))
    console.print(headline)
    per_class = Table(*PER_CLASS_HEADER, title="per class")
    for row in per_class_rows(m):
        per_class.add_row(*(fmt(c) for c in row))
    console.print(per_class)
    confusion = Table("true \\ predicted", *m["classes"], title="confusion matrix")
    for name, row in zip(m["classes"], m["confusion_matrix"], strict=True):
        confusion.add_row(name, *(str(c) for c in row))
    console.print(confusion)
