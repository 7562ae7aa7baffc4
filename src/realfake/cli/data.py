"""``realfake data``: inspect a data source, derive CIFAR-10 from CIFAKE, write perturbed copies."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from realfake.cli._common import add_scorer_arguments, open_scorer
from realfake.data.config import RESIZE_POLICIES

if TYPE_CHECKING:
    from realfake.data.info import DataInfo
    from realfake.data.perturbed_copy import PerturbedCopy


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect data sources and derive data sets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    info = sub.add_parser(
        "info",
        help="images per split and class, sizes, skipped files, exact duplicates",
        description="Decode PATH once into the cache (or read the cache) and summarise it.",
    )
    info.add_argument(
        "path",
        nargs="?",
        default=None,
        help="folder, split tree, .zip, .tar(.gz) or .csv; default: the embedded CIFAKE mini set",
    )
    info.add_argument("--image-size", type=int, default=32, help="cache resolution (default 32)")
    info.add_argument("--resize", choices=RESIZE_POLICIES, default="stretch")
    info.add_argument(
        "--cache-dir", default=None, help="default $REALFAKE_CACHE or ~/.cache/realfake"
    )
    info.add_argument("--strict", action="store_true", help="fail on files that do not decode")
    info.add_argument(
        "--show",
        type=int,
        default=10,
        metavar="N",
        help="ignored and skipped files, and duplicate groups per kind, listed (10)",
    )
    info.set_defaults(handler=_info)

    cifar = sub.add_parser(
        "cifar10",
        help="derive the CIFAR-10 image-folder set from CIFAKE's REAL images",
        description="Copy CIFAKE's REAL images (CIFAR-10, class k in the file name 'N (k).jpg') "
        "into DST/<split>/<class>/<file>, bytes unchanged.",
    )
    cifar.add_argument("src", help="a CIFAKE source: folder, .zip or .tar with REAL/ folders")
    cifar.add_argument("dst", help="new or empty destination folder")
    cifar.add_argument("--classes", default=None, help="comma-separated subset, e.g. dog,cat,ship")
    cifar.set_defaults(handler=_cifar10)

    perturb = sub.add_parser(
        "perturb",
        help="write a perturbed or attacked copy of a data set (JPEG, blur, noise, PGD, ...)",
        description="Decode every image of SRC at its own size, apply one perturbation and write "
        "it to the same relative path under DST: JPEG bytes at that quality (.jpg) for jpeg:Q, "
        "lossless PNG (.png, same stem) for every other kind. Images that would land on one "
        "name (a.jpg and a.png) are all kept: the later ones in sorted order get a__2.png, "
        "a__3.png, ..., and are listed. Attacks (fgsm:EPS, pgd:EPS) run white-box against "
        "--checkpoint: each image is decoded and resized as the checkpoint's predictor sees it "
        "(so the copy is at the model's input size), attacked to lower the probability of its "
        "class (its folder's class; in an unlabelled source, the model's own prediction), "
        "rounded to uint8 and written as PNG.",
    )
    perturb.add_argument("src", help="folder, .zip or .tar of images (any layout)")
    perturb.add_argument("dst", help="new or empty destination folder")
    perturb.add_argument(
        "--perturbation",
        "-p",
        required=True,
        metavar="KIND:LEVEL",
        help="e.g. jpeg:50, blur:1, noise:0.05, resize:0.5, brightness:0.7, contrast:0.7, "
        "crop:0.8; attacks (need --checkpoint): fgsm:EPS (one step of EPS/255) or pgd:EPS (20 "
        "steps of 2.5·EPS/20 /255, random start), EPS an integer, e.g. pgd:4",
    )
    perturb.add_argument(
        "--seed", type=int, default=0, help="seed of the noise perturbation and of PGD's start"
    )
    perturb.add_argument(
        "--checkpoint",
        default=None,
        metavar="RUN",
        help="run directory or .ckpt to attack (attacks only)",
    )
    add_scorer_arguments(perturb)
    perturb.set_defaults(handler=_perturb)


def _info(args: argparse.Namespace) -> int:
    from realfake.data.info import describe_source

    info = describe_source(
        args.path, args.image_size, args.resize, cache_dir=args.cache_dir, strict=args.strict
    )
    print_info(info, show=args.show)
    return 0


def print_info(info: DataInfo, show: int = 10) -> None:
    """Rich tables for a DataInfo."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"source: {info.source}  ({info.layout.replace('_', ' ')}, {info.total:,} images)"
    )
    table = Table(title="images per split and class", title_justify="left")
    table.add_column("split")
    classes = info.classes or ["-"]
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right")
    for split, counts in info.counts.items():
        cells = [f"{counts.get(c, 0):,}" for c in classes]
        table.add_row(split, *cells, f"{sum(counts.values()):,}")
    console.print(table)

    sizes = ", ".join(f"{size}: {n:,}" for size, n in list(info.sizes.items())[:8])
    more = f" (+{len(info.sizes) - 8} other sizes)" if len(info.sizes) > 8 else ""
    console.print(f"sizes (W×H): {sizes or 'none'}{more}")
    console.print(f"classes (label order): {', '.join(info.classes) or 'none (unlabelled)'}")
    console.print(f"ignored non-image files: {info.ignored:,} (by extension, or junk)")
    for name in info.ignored_files[:show]:
        console.print(f"  {name}")
    if len(info.ignored_files) > show:
        console.print(f"  ... {len(info.ignored_files) - show} more ignored files (--show N)")
    console.print(f"skipped (failed to decode): {len(info.skipped):,}")
    for path, reason in info.skipped[:show]:
        console.print(f"  {path}: {reason}")
    if len(info.skipped) > show:
        console.print(f"  ... {len(info.skipped) - show} more skipped files (--show N)")

    dup = Table(title="exact duplicates (same bytes)", title_justify="left")
    dup.add_column("where")
    dup.add_column("groups", justify="right")
    dup.add_column("files", justify="right")
    for split, groups in info.within.items():
        files = sum(len(g) for g in groups.values())
        dup.add_row(f"inside {split}", f"{len(groups):,}", f"{files:,}")
    if info.across:
        files = sum(len(g) for g in info.across.values())
        dup.add_row("across splits", f"{len(info.across):,}", f"{files:,}")
    if not info.within and not info.across:
        dup.add_row("-", "0", "0")
    console.print(dup)
    for split, groups in info.within.items():
        for digest, names in list(groups.items())[:show]:
            console.print(f"  {split} {digest}: {' | '.join(names)}")
        if len(groups) > show:
            console.print(f"  ... {len(groups) - show} more groups inside {split} (--show N)")
    for digest, members in list(info.across.items())[:show]:
        console.print(f"  across {digest}: {' | '.join(f'{s}:{n}' for s, n in members)}")
    if len(info.across) > show:
        console.print(f"  ... {len(info.across) - show} more groups across splits (--show N)")
    if info.train_in_test:
        console.print(
            f"train images duplicating a test image: {info.train_in_test:,} "
            "(data.drop_test_duplicates=true drops them from training)"
        )
    console.print(f"fingerprint: {info.fingerprint}  content: {info.content_hash}")
    console.print(f"cache: {info.cache_path}")


def _cifar10(args: argparse.Namespace) -> int:
    from realfake.data.cifar10 import export_cifar10

    counts = export_cifar10(args.src, args.dst, args.classes)
    for split, per_class in counts.items():
        listed = ", ".join(f"{c} {n:,}" for c, n in per_class.items())
        print(f"{split}: {sum(per_class.values()):,} images ({listed})")
    print(f"wrote {args.dst}")
    return 0


def _perturb(args: argparse.Namespace) -> int:
    from realfake.attacks.linf import ATTACKS
    from realfake.data.perturbed_copy import perturb_source
    from realfake.errors import ConfigError

    kind = args.perturbation.strip().partition(":")[0].strip().lower()
    if kind in ATTACKS:
        return _attack(args)
    if args.checkpoint is not None:
        raise ConfigError(
            f"--checkpoint applies to attacks (fgsm:EPS, pgd:EPS); --perturbation "
            f"{args.perturbation} does not use a model: leave --checkpoint out"
        )
    copy = perturb_source(args.src, args.dst, args.perturbation, seed=args.seed)
    _print_copy(copy)
    return 0


def _attack(args: argparse.Namespace) -> int:
    from realfake.attacks.attacked_copy import attack_source
    from realfake.errors import ConfigError

    if args.checkpoint is None:
        raise ConfigError(
            f"--perturbation {args.perturbation} is an attack on a model: name the model to "
            "attack with --checkpoint RUN (a run directory or .ckpt file)"
        )
    scorer = open_scorer(args, args.checkpoint)
    copy = attack_source(args.src, args.dst, args.perturbation, scorer, seed=args.seed)
    _print_copy(copy)
    print(f"attack: {copy.attack}; attacked classes: {copy.labels}")
    print(
        f"the model's decision ({scorer.describe_rule()}) changed on {copy.changed:,} of "
        f"{copy.written:,} images"
    )
    return 0


def _print_copy(copy: PerturbedCopy) -> None:
    for name, reason in copy.skipped[:20]:
        print(f"skipped {name}: {reason}")
    if len(copy.skipped) > 20:
        print(f"... and {len(copy.skipped) - 20} more skipped")
    if copy.renamed:
        print(
            f"{len(copy.renamed):,} images would have landed on another image's file; written as:"
        )
        for name, written in copy.renamed:
            print(f"  {name} -> {written}")
    print(f"wrote {copy.written:,} images perturbed by {copy.perturbation} to {copy.destination}")
