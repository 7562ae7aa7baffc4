"""``realfake robustness``: metrics of checkpoints under JPEG, blur, noise, resizing and more."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from realfake.cli._common import add_inference_arguments, device, non_negative_int, output_root

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from realfake.robustness.grid import RobustnessReport


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "robustness",
        help="accuracy, F1, ROC-AUC and AP under a grid of perturbations",
        description="Evaluate checkpoints on clean and perturbed test images (both classes "
        "perturbed alike), with the decision threshold chosen on the run's clean validation "
        "split and frozen (0.5 when it has none). Writes robustness.csv and robustness.png per "
        "checkpoint; with several checkpoints, also prints them side by side.",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="run dir or .ckpt")
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
    parser.set_defaults(handler=_robustness, variadic="checkpoints")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --split, --tta, --batch-size and --device, shared by the audit commands."""
    parser.add_argument(
        "--data",
        default=None,
        help="labelled test images (folder, .zip, .tar, .csv); default: the run's test split",
    )
    parser.add_argument(
        "--split", default=None, help="split of --data to use (default: test, or its only split)"
    )
    add_inference_arguments(parser)
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, mps ...")


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
    if report.threshold is not None:
        out.print(
            f"threshold on P({report.positive}) = {report.threshold:.4f}, frozen: "
            f"{report.threshold_from}; F1 and AP score {report.positive} as positive"
        )
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
    several = len(args.checkpoints) > 1
    # Where results go is checked before any image is scored.
    for ref in args.checkpoints:
        check_writable_dir(output_root(ref) / "robustness" if args.out is None else args.out)
    for ref in args.checkpoints:
        report = robustness_report(
            ref,
            args.data,
            args.perturbations,
            split=args.split,
            seed=args.seed,
            batch_size=args.batch_size,
            tta=args.tta,
            device=args.device,
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
