"""The `realfake` command line: a thin layer that parses arguments and prints results.

Every module in this package that defines ``register(subparsers)`` adds one subcommand; the
handlers it installs call importable functions elsewhere in the package and only format output.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from realfake import __version__
from realfake.errors import RealfakeError, TrainingInterrupted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realfake",
        description="Train and evaluate from-scratch CNNs that tell real images from AI-generated "
        "ones (CIFAKE), or classify any labelled image folder.",
    )
    parser.add_argument("--version", action="version", version=f"realfake {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show debug logging, and the traceback of an error (for bug reports)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, letting a command's KEY=VALUE (or run) list go on after its options.

    argparse stops filling a ``nargs="*"`` positional at the first option, so ``realfake compare
    study=x --seeds 3 trainer.max_epochs=20`` would leave the last item unrecognised. A command
    that takes such a list names its destination with ``set_defaults(variadic=DEST)``; arguments
    argparse could not place are appended to it, in order, unless one looks like an option.
    """
    args, extra = parser.parse_known_args(argv)
    dest = getattr(args, "variadic", None)
    if extra and (dest is None or any(item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, dest, [*getattr(args, dest), *extra])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        result = handler(args)
    except TrainingInterrupted as exc:  # Ctrl-C or SIGTERM: say how to go on, exit 130/143
        print(f"interrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except RealfakeError as exc:
        # A user error is one sentence; -v adds where it was raised, for a bug report.
        # Anything else (a bug) propagates with its traceback.
        if args.verbose:
            traceback.print_exc()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def one_line(exc: BaseException) -> str:
    """The error's message on one line (line breaks in it become spaces)."""
    return " ".join(str(exc).split()) or type(exc).__name__
