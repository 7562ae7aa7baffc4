"""`realfake sweep`: an Optuna hyper-parameter search from a sweep file (ours or W&B's)."""

from __future__ import annotations

import argparse
import math
import shlex
import sys

from realfake.cli._common import positive_int
from realfake.studies.sweepfile import PRUNERS, SAMPLERS, STORAGE_KINDS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="hyper-parameter search (Optuna) from a sweep file; `sweep show NAME` for results",
        description="Run or continue a sweep: realfake sweep SWEEP.yaml [--trials N] [--storage "
        "URL] [--study NAME] [KEY=VALUE ...] (the overrides apply to every trial). SWEEP is a "
        "shipped sweep (configs/sweep/NAME.yaml) or a YAML file in realfake's or W&B's sweep "
        "format. Running the same command again (on any machine sharing --storage) continues "
        "the study until it holds N ended trials. `realfake sweep show NAME` prints the "
        "leaderboard.",
    )
    _options(p)
    # REMAINDER, re-read in run(): options may come after the file too (argparse alone cannot
    # mix options between positionals in a subcommand).
    p.add_argument(
        "items",
        nargs=argparse.REMAINDER,
        metavar="SWEEP | show NAME [KEY=VALUE ...]",
        help="the sweep file (or `show NAME`), then config overrides for every trial",
    )
    p.set_defaults(handler=run)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trials", type=positive_int, help="ended trials the study should hold (file's default)"
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help=f"SQLAlchemy URL of the study, of kind {', '.join(STORAGE_KINDS)} (default "
        "sqlite:///sweeps/NAME/study.db), e.g. postgresql://user@host/db to share it between "
        "machines",
    )
    p.add_argument(
        "--storage-timeout",
        type=positive_int,
        metavar="S",
        help="seconds the storage may take to answer one request (default 60); connecting "
        "gives up after at most 5",
    )
    p.add_argument("--study", metavar="NAME", help="study name (default: the sweep file's name)")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="override the file's search: TPE, Gaussian-process BO, random or grid",
    )
    p.add_argument("--pruner", choices=PRUNERS, help="override the file's pruner")
    p.add_argument(
        "--seed",
        type=int,
        help="the sampler's seed (default: fresh; give each worker of one study its own)",
    )
    p.add_argument("--out", metavar="DIR", default="sweeps", help="parent of sweeps/NAME/ (sweeps)")
    p.add_argument(
        "--heartbeat",
        type=positive_int,
        default=10,
        metavar="S",
        help="seconds between a running trial's heartbeats (10)",
    )
    p.add_argument(
        "--grace",
        type=positive_int,
        metavar="S",
        help="a trial without a heartbeat for S seconds is taken for dead, failed and retried "
        "(default max(60, 3 × heartbeat))",
    )
    p.add_argument("--top", type=positive_int, default=20, help="show: rows to print (20)")


def run(args: argparse.Namespace) -> int:
    from realfake.errors import ConfigError

    inner = argparse.ArgumentParser(prog="realfake sweep")
    _options(inner)
    inner.add_argument("items", nargs="*")
    args = inner.parse_intermixed_args(args.items, namespace=args)
    items = list(args.items)
    if not items:
        raise ConfigError("give a sweep file (realfake sweep SWEEP.yaml) or `show NAME`")
    if items[0] == "show":
        if len(items) != 2:
            raise ConfigError("usage: realfake sweep show NAME [--storage URL] [--out DIR]")
        from realfake.studies.sweep import show_sweep
        from realfake.studies.sweepstorage import STORAGE_TIMEOUT_S

        timeout = args.storage_timeout or STORAGE_TIMEOUT_S
        print_leaderboard(*show_sweep(items[1], args.storage, args.out, timeout), args.top)
        return 0
    sweep, overrides = items[0], items[1:]
    bad = [o for o in overrides if "=" not in o]
    if "=" in sweep or bad:
        raise ConfigError(f"give one sweep file first, then KEY=VALUE overrides (got {items})")
    from realfake.studies.sweep import SweepInterrupted, run_sweep, show_sweep
    from realfake.studies.sweepstorage import STORAGE_TIMEOUT_S, mask_secrets

    timeout = args.storage_timeout or STORAGE_TIMEOUT_S
    try:
        result = run_sweep(
            sweep,
            trials=args.trials,
            storage=args.storage,
            study_name=args.study,
            overrides=overrides,
            out_root=args.out,
            sampler=args.sampler,
            pruner=args.pruner,
            seed=args.seed,
            heartbeat_s=args.heartbeat,
            grace_s=args.grace,
            storage_timeout_s=timeout,
        )
    except SweepInterrupted as exc:
        again = mask_secrets(shlex.join(continue_command(inner, args, sweep, overrides)))
        print(f"interrupted: {exc}; continue the study with: {again}", file=sys.stderr)
        return exc.exit_code
    print_leaderboard(*show_sweep(result.name, result.storage, args.out, timeout), args.top)
    for name, path in result.files.items():
        print(f"{name}: {path}")
    if "best_config" in result.files:
        print(f"reproduce the best trial: realfake train experiment={result.files['best_config']}")
    print(f"browse live: optuna-dashboard {mask_secrets(result.storage)}")
    return 0


# The options that decide which study a command continues and how, in the order printed.
_CONTINUED = ("trials", "storage", "study", "sampler", "pruner", "seed", "out", "heartbeat",
              "grace", "storage_timeout")  # fmt: skip


def continue_command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, sweep: str, overrides: list[str]
) -> list[str]:
    """The words of the command that continues this sweep's study: the same options."""
    words = ["realfake", "sweep", sweep]
    for dest in _CONTINUED:
        value = getattr(args, dest)
        if value is not None and value != parser.get_default(dest):
            words += [f"--{dest.replace('_', '-')}", str(value)]
    return [*words, *overrides]


def print_leaderboard(name: str, direction: str, rows: list[dict], top: int) -> None:
    """A plain-text table: rank, trial, state, value, epochs, the searched values, reason."""
    fixed = {"trial", "state", "value", "last_epoch_value", "epochs", "duration_s", "retry_of",
             "run_dir", "reason"}  # fmt: skip
    params = sorted({k for r in rows for k in r} - fixed)
    header = ["#", "trial", "state", "value", "epochs", "time_s", *params, "note"]
    lines = []
    for i, r in enumerate(rows[:top], 1):
        note = r["reason"] or (f"retry of {r['retry_of']}" if r["retry_of"] is not None else "")
        lines.append(
            [
                str(i),
                str(r["trial"]),
                r["state"],
                _fmt(r["value"]),
                _fmt(r["epochs"]),
                _fmt(r["duration_s"], 0),
                *(_fmt(r.get(k)) for k in params),
                note[:70],
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(header)]  # fmt: skip
    print(f"sweep {name} ({direction}; {len(rows)} trials, best first)")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits == 0 or abs(value) >= 1e-3 else f"{value:.3g}"
    return str(value)
