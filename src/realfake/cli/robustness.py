"""``realfake robustness``: metrics of checkpoints under JPEG, blur, noise, resizing and more."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from realfake.cli._common import (
    add_model_argument,
    add_scorer_arguments,
    non_negative_int,
    open_scorer,
    output_root,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from realfake.robustness.grid import RobustnessReport


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "robustness",
        help="accuracy, F1, ROC-AUC and AP under a grid of perturbations",
        description="Evaluate models on clean and perturbed test images (both classes "
        "perturbed alike), decided by each run's rule (its frozen threshold, else the arg-max; "
        "--threshold to choose). Writes robustness.csv and robustness.png per model; with "
        "several, also prints them side by side.",
    )
    add_model_argument(parser, several=True)
    add_data_arguments(parser)
    parser.add_argument(
        "--perturbations",
        default=None,
        metavar="SPEC",
        help="comma-separated KIND:LEVEL or KIND (all its default levels), e.g. jpeg:50,blur; "
        "white-box attacks on the checkpoint: fgsm:EPS (one step) and pgd:EPS (20 steps of "
        "2.5·EPS/20, random start), EPS in 1/255 of the pixel range, e.g. fgsm:2,pgd "
        "(pgd = pgd:1,2,4,8); default: the whole grid of perturbations, no attacks",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the noise perturbation"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: <run dir>/robustness; several checkpoints: OUT/<run>/)",
    )
    parser.add_argument(
        "--metric",
        choices=("accuracy", "f1", "roc_auc", "ap"),
        default="accuracy",
        help="metric of the side-by-side table (several checkpoints)",
    )
    parser.set_defaults(handler=_robustness, variadic="models")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --split and the scorer's options, shared by the audit commands."""
    parser.add_argument(
        "--data",
        default=None,
        help="labelled test images (folder, .zip, .tar, .csv); default: the run's test split",
    )
    parser.add_argument(
        "--split", default=None, help="split of --data to use (default: test, or its only split)"
    )
    add_scorer_arguments(parser)


def fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def console() -> Console:
    """A rich console; 160 columns when writing to a file or pipe, so tables are not cut."""
    import sys

    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A rich table, first column left-aligned and the rest right-aligned."""
    from rich.table import Table

    out = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*(fmt(v) for v in row))
    return out


def print_report(report: RobustnessReport) -> None:
    """The report as a table with the change from clean, and its headline mean."""
    from realfake.attacks.linf import ATTACKS, parse_attack

    out = console()
    out.print(f"checkpoint: {report.checkpoint}")
    out.print(f"test images: {report.data} ({report.clean.n:,})")
    out.print(f"decision: {report.decision}")
    if report.positive is not None:
        out.print(f"F1 and AP score {report.positive} as positive")
    clean = report.clean.accuracy
    rows = [
        (r.perturbation, r.accuracy, r.accuracy - clean, r.f1, r.roc_auc, r.ap) for r in report.rows
    ]
    mean = report.mean()
    rows.append(("mean over grid", mean["accuracy"], mean["accuracy"] - clean, mean["f1"],
                 mean["roc_auc"], mean["ap"]))  # fmt: skip
    columns = ("perturbation", "accuracy", "Δ acc", "F1", "ROC-AUC", "AP")
    out.print(table("robustness", columns, rows))
    attacks = [r.perturbation for r in report.rows if r.kind in ATTACKS]
    for name in attacks:
        out.print(f"{name}: {parse_attack(name).describe()}")
    if attacks:
        out.print(
            "attacks: white-box on this checkpoint (its normalisation and flip TTA), labels "
            "from the test split, attacked images rounded to uint8 before scoring"
        )
    out.print(
        f"headline: mean accuracy over {len(report.perturbed)} perturbations "
        f"{fmt(mean['accuracy'])} (clean {fmt(clean)}), mean ROC-AUC {fmt(mean['roc_auc'])}"
    )


def _robustness(args: argparse.Namespace) -> int:
    from realfake.atomic import check_writable_dir
    from realfake.robustness.grid import compare, robustness_report, write_csv
    from realfake.robustness.plot import plot_heatmap

    reports: dict[str, RobustnessReport] = {}
    several = len(args.models) > 1
    # Where results go is checked before any image is scored.
    for ref in args.models:
        check_writable_dir(output_root(ref) / "robustness" if args.out is None else args.out)
    for ref in args.models:
        scorer = open_scorer(args, ref)
        report = robustness_report(
            scorer, args.data, args.perturbations, split=args.split, seed=args.seed
        )
        run = output_root(ref)
        label = run.name if run.name not in reports else f"{run.name}-{len(reports) + 1}"
        reports[label] = report
        if args.out is None:
            out = run / "robustness"
        else:
            out = Path(args.out) / label if several else Path(args.out)
        print_report(report)
        csv_path = write_csv(report.records(), out / "robustness.csv")
        png = plot_heatmap(report, out / "robustness.png", title=f"{label}: {report.data}")
        print(f"wrote {csv_path} and {png}\n")
    if several:
        side = compare(reports, args.metric)
        labels = list(reports)
        rows = [[r["perturbation"], *(r[k] for k in labels)] for r in side]
        console().print(table(f"{args.metric}, side by side", ["", *labels], rows))
        if args.out is not None:
            print(f"wrote {write_csv(side, Path(args.out) / 'comparison.csv')}")
    return 0
