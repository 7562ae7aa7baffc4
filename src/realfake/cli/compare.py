"""`realfake compare`: one table of finished runs, or train and compare the arms of a study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from realfake.errors import ConfigError

if TYPE_CHECKING:
    from realfake.studies.comparison import Comparison


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare runs, or run a study (study=NAME), into one table",
        description="Either collect finished runs (realfake compare runs/a runs/b ...) or run a "
        "study (realfake compare study=architectures [--seeds N] [KEY=VALUE ...]): every arm is "
        "trained with the overrides given (applied to every arm, last), evaluated on its test "
        "split, and summarised in table.md, table.csv, table.html and curves.png, with every "
        "arm tested against the best one on the same test images (paired bootstrap, McNemar). "
        "A study writes its plan to <study>-<time>/study.json; `realfake compare --resume DIR` "
        "continues an interrupted one: finished runs are reused, a run stopped mid-training "
        "resumes from its last checkpoint, the rest train.",
    )
    p.add_argument(
        "items",
        nargs="*",
        metavar="RUN | study=NAME | KEY=VALUE",
        help="run directories to collect, or study=NAME (a shipped study or a YAML path) and "
        "config overrides for every arm",
    )
    p.add_argument("--seeds", type=int, help="seeds per arm in a study (1)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="collect: the output folder (default studies/compare-<time>); study: the folder "
        "that receives <study>-<time>/ (default studies)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the study in DIR (a studies/<study>-<time>/ folder) as its study.json "
        "planned it; study=NAME, --seeds and overrides may be repeated but must match the plan, "
        "else it is refused, naming what differs",
    )
    p.add_argument(
        "--reevaluate", action="store_true", help="evaluate runs again even if metrics.json exists"
    )
    p.set_defaults(handler=run, variadic="items")


def run(args: argparse.Namespace) -> int:
    study = [i.partition("=")[2] for i in args.items if i.startswith("study=")]
    overrides = [i for i in args.items if "=" in i and not i.startswith("study=")]
    runs = [i for i in args.items if "=" not in i]
    if len(study) > 1 or (study and runs):
        raise ConfigError("give either one study=NAME (with overrides) or run directories")
    if study or args.resume is not None:
        result = _study(args, study[0] if study else None, overrides, runs)
    else:
        if overrides or args.seeds is not None:
            given = overrides or [f"--seeds {args.seeds}"]
            raise ConfigError(f"{given} only apply to a study (study=NAME), not to finished runs")
        if not runs:
            raise ConfigError("nothing to compare: give run directories, study=NAME or --resume")
        from realfake.studies.comparison import compare

        result = compare(runs, args.out, reevaluate=args.reevaluate)
    print_table(result.out_dir / "table.md")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


def _study(
    args: argparse.Namespace, name: str | None, overrides: list[str], runs: list[str]
) -> Comparison:
    """Run the study ``name``, or continue the one in ``--resume`` (checked against its plan)."""
    from realfake.studies.study import continue_study, run_study

    seeds = 1 if args.seeds is None else args.seeds
    if args.resume is None:
        assert name is not None
        return run_study(name, seeds, overrides, args.out or "studies")
    if runs or args.out:
        given = runs or [f"--out {args.out}"]
        raise ConfigError(f"--resume continues a study in its own folder; {given} do not apply")
    if name is not None:
        return run_study(name, seeds, overrides, resume=args.resume)
    if overrides or args.seeds is not None:
        raise ConfigError(
            "--resume DIR alone continues the study as planned; to check a command against the "
            "plan, repeat its study=NAME with the same --seeds and overrides"
        )
    return continue_study(args.resume)


def print_table(markdown_path: Path) -> None:
    """The Markdown table, rendered by rich on a terminal and verbatim elsewhere (logs, pipes)."""
    text = markdown_path.read_text()
    if not sys.stdout.isatty():
        print(text, end="")
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(text))
