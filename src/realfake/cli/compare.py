"""`realfake compare`: one table of finished runs, or train and compare the arms of a study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realfake.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare runs, or run a study (study=NAME), into one table",
        description="Either collect finished runs (realfake compare runs/a runs/b ...) or run a "
        "study (realfake compare study=architectures [--seeds N] [KEY=VALUE ...]): every arm is "
        "trained with the overrides given (applied to every arm, last), evaluated on its test "
        "split, and summarised in table.md, table.csv, table.html and curves.png.",
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="RUN | study=NAME | KEY=VALUE",
        help="run directories to collect, or study=NAME (a shipped study or a YAML path) and "
        "config overrides for every arm",
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per arm in a study (1)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="collect: the output folder (default studies/compare-<time>); study: the folder "
        "that receives <study>-<time>/ (default studies)",
    )
    p.add_argument(
        "--reevaluate", action="store_true", help="evaluate runs again even if metrics.json exists"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    study = [i.partition("=")[2] for i in args.items if i.startswith("study=")]
    overrides = [i for i in args.items if "=" in i and not i.startswith("study=")]
    runs = [i for i in args.items if "=" not in i]
    if len(study) > 1 or (study and runs):
        raise ConfigError("give either one study=NAME (with overrides) or run directories")
    if study:
        from realfake.studies.study import run_study

        result = run_study(study[0], args.seeds, overrides, args.out or "studies")
    else:
        if overrides or args.seeds != 1:
            given = overrides or [f"--seeds {args.seeds}"]
            raise ConfigError(f"{given} only apply to a study (study=NAME), not to finished runs")
        from realfake.studies.comparison import compare

        result = compare(runs, args.out, reevaluate=args.reevaluate)
    print_table(result.out_dir / "table.md")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


def print_table(markdown_path: Path) -> None:
    """The Markdown table, rendered by rich on a terminal and verbatim elsewhere (logs, pipes)."""
    text = markdown_path.read_text()
    if not sys.stdout.isatty():
        print(text, end="")
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(text))
