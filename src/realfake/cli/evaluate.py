"""`realfake evaluate`: score a run or checkpoint on labelled images; metrics, figures, report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from realfake.cli._common import (
    add_model_argument,
    add_scorer_arguments,
    non_negative_int,
    open_scorer,
    positive_int,
)
from realfake.runs.spec import MIN_PER_CLASS, THRESHOLD_CRITERIA


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="metrics, figures and report of a trained run on labelled images",
        description="Evaluate a run directory (its best checkpoint) or a checkpoint file. Default "
        "data: the run's own test split, rebuilt exactly. --data takes any labelled source "
        "(folder, split tree, .zip, .tar, .csv) whose class names match the model's. Decisions "
        "follow the run's rule: the threshold frozen for these weights, else the arg-max. "
        "--freeze-threshold chooses a threshold on the run's validation split and freezes it "
        "into model.json, only when that split has --min-val-per-class images of each class; "
        "every later command then decides with it. The tracker's entry of the run gets the "
        "metrics, threshold, report and figures.",
    )
    add_model_argument(p)
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
    add_scorer_arguments(p)
    p.add_argument(
        "--freeze-threshold",
        choices=THRESHOLD_CRITERIA,
        default=None,
        metavar="CRITERION",
        help="choose a threshold on the run's validation split maximising accuracy or youden "
        "(Youden's J) and freeze it for these weights, if the split supports it",
    )
    p.add_argument(
        "--min-val-per-class",
        type=positive_int,
        default=MIN_PER_CLASS,
        metavar="N",
        help=f"validation images of each class a frozen threshold needs ({MIN_PER_CLASS}: "
        "each class's recall then known within ±4.9 points)",
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
    from realfake.evaluate.evaluation import PREDICTIONS, evaluate

    # Freezing chooses anew, so the scorer starts from the arg-max, not an earlier threshold.
    scorer = open_scorer(
        args, args.model, **({"threshold": "argmax"} if args.freeze_threshold else {})
    )
    result = evaluate(
        scorer,
        data=args.data,
        split=args.split,
        out=args.out,
        freeze=args.freeze_threshold,
        min_per_class=args.min_val_per_class,
        n_resamples=args.resamples,
        seed=args.seed,
        figures=not args.no_figures,
        progress=sys.stderr.isatty(),
    )
    if result.freeze is not None:
        verb = "froze" if result.freeze.frozen else "did not freeze a threshold:"
        print(f"{verb} {result.freeze.why}")
    unsure, verdicts = result.record["unsure"], result.metrics["verdicts"]
    if unsure["band"]:
        band = unsure["band"]
        print(
            f"UNSURE band: ±{band['margin']:.3f} around the threshold (at most "
            f"{band['target_error']:.0%} errors among answers, 95% bound on validation)"
        )
    if unsure["feature_distance"]:
        print(f"UNSURE when unlike the training images: {unsure['feature_distance']['fitted_on']}")
    print(
        f"answered {verdicts['answered']} of {verdicts['answered'] + verdicts['unsure']} images "
        f"(coverage {verdicts['coverage']:.1%}), accuracy of the answers "
        f"{verdicts['selective_accuracy']:.4f}; UNSURE: {verdicts['unsure_in_band']} in the "
        f"band, {verdicts['unsure_unlike_training']} unlike the training images"
    )
    print_evaluation(result.record)
    print(f"wrote {result.out_dir / 'metrics.json'} and {PREDICTIONS}")
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
    from realfake.evaluate.report import (
        PER_CLASS_HEADER,
        decision_text,
        headline_rows,
        per_class_rows,
    )

    m = record["metrics"]
    console = Console()
    decision = decision_text(record)
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
