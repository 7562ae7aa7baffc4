"""``realfake audit``: shortcut probes of a checkpoint, and train/test leaks of a data set."""

from __future__ import annotations

import argparse

from realfake.cli._common import (
    add_model_argument,
    add_scorer_arguments,
    non_negative_int,
    open_scorer,
    output_root,
    positive_int,
)
from realfake.cli.robustness import add_data_arguments, console, fmt, table


def _ints(low: int, high: int | None = None):
    """argparse type: comma-separated integers, each in [low, high]."""
    span = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            values = ()
        if not values or any(v < low or (high is not None and v > high) for v in values):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers {span}, got {text!r}"
            )
        return values

    return parse


def _distance(text: str) -> int:
    """argparse type: a pHash distance, 0 to 63 bits of 64."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 63:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer from 0 to 63 (bits)")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="shortcut probes of a model, leaks of a data set")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    short = sub.add_parser(
        "shortcuts",
        help="does the model read compression, object class or scale instead of content?",
        description="Accuracy after re-encoding every test image at one JPEG quality, accuracy per "
        "CIFAR-10 class (from CIFAKE file names), and accuracy with the test images fed at other "
        "sizes (every model here pools globally, so it accepts any size).",
    )
    add_model_argument(short)
    add_data_arguments(short)
    short.add_argument("--jpeg-quality", type=_ints(1, 100), default=(95, 75, 50), metavar="Q[,Q]")
    short.add_argument("--sizes", type=_ints(1), default=(24, 48, 64), metavar="PX[,PX]")
    short.add_argument("--out", default=None, help="CSV folder (default <run dir>/audit)")
    short.set_defaults(handler=_shortcuts)

    leaks = sub.add_parser(
        "leaks",
        help="exact and near-duplicate test images among the training images",
        description="Byte-identical files (by digest) and near duplicates (imagehash pHash within "
        "--max-distance bits of 64) of each test image among the training images. TRAIN alone "
        "must hold train/ and test/ splits; with TEST, the training images are TRAIN's train "
        "split (or its only split) and the test images TEST's test split (or its only split).",
    )
    leaks.add_argument("train", help="training images (folder, .zip, .tar, .csv)")
    leaks.add_argument("test", nargs="?", default=None, help="test images (default: TRAIN's test/)")
    leaks.add_argument(
        "--max-distance", type=_distance, default=4, help="pHash bits (default 4 of 64)"
    )
    leaks.add_argument(
        "--image-size", type=positive_int, default=32, help="decoding size (default 32)"
    )
    leaks.add_argument("--out", default="leaks.csv", help="CSV of the pairs (default leaks.csv)")
    leaks.add_argument(
        "--checkpoint",
        default=None,
        metavar="RUN",
        help="also score this model (a run directory, .ckpt or .onnx) on all test images and "
        "on those without a leak",
    )
    add_scorer_arguments(leaks)
    leaks.add_argument(
        "--show", type=non_negative_int, default=10, metavar="N", help="pairs listed (10)"
    )
    leaks.set_defaults(handler=_leaks)


def _shortcuts(args: argparse.Namespace) -> int:
    from realfake.atomic import check_writable_dir
    from realfake.robustness.grid import write_csv
    from realfake.robustness.shortcuts import audit_shortcuts

    out = check_writable_dir(args.out or output_root(args.model) / "audit")

    audit = audit_shortcuts(
        open_scorer(args, args.model),
        args.data,
        split=args.split,
        jpeg_qualities=args.jpeg_quality,
        sizes=args.sizes,
    )
    screen = console()
    screen.print(f"test images: {audit.data}; clean accuracy {fmt(audit.clean_accuracy)}")
    screen.print(f"decision: {audit.decision}")
    rows = [(f"JPEG {p.quality}", p.accuracy, p.accuracy - p.clean_accuracy, p.changed)
            for p in audit.jpeg]  # fmt: skip
    screen.print(table("every test image re-encoded", ["", "accuracy", "Δ acc", "changed"], rows))
    rows = [(f"{s.size} px", s.accuracy, s.accuracy - audit.clean_accuracy, s.changed, s.note)
            for s in audit.sizes]  # fmt: skip
    screen.print(table("fed at other sizes", ["", "accuracy", "Δ acc", "changed", "note"], rows))
    if audit.per_class:
        labels = audit.classes
        by_class: dict[str, dict[str, tuple[int, float]]] = {}
        for r in audit.per_class:
            by_class.setdefault(r.cifar10_class, {})[r.label] = (r.n, r.accuracy)
        rows = [
            (cls, *(cells.get(lab, (0, float("nan")))[1] for lab in labels),
             sum(n for n, _ in cells.values()))
            for cls, cells in by_class.items()
        ]  # fmt: skip
        screen.print(table("accuracy per CIFAR-10 class", ["class", *labels, "images"], rows))
    if audit.unparsed:
        screen.print(f"{audit.unparsed:,} test images have no CIFAR-10 class in their name")
    write_csv([vars(p) for p in audit.jpeg], out / "shortcuts_jpeg.csv")
    write_csv([vars(s) for s in audit.sizes], out / "shortcuts_sizes.csv")
    if audit.per_class:
        write_csv([vars(r) for r in audit.per_class], out / "shortcuts_classes.csv")
    print(f"wrote {out}/shortcuts_*.csv")
    return 0


def _leaks(args: argparse.Namespace) -> int:
    from realfake.data.embedded import embedded_data_path
    from realfake.robustness.grid import write_csv
    from realfake.robustness.leaks import LEAK_FIELDS, audit_leaks, score_without_leaks

    report = audit_leaks(args.train, args.test, args.max_distance, args.image_size)
    screen = console()
    screen.print(f"train: {report.train} ({report.n_train:,} images)")
    screen.print(f"test:  {report.test} ({report.n_test:,} images)")
    exact_pairs = sum(p.exact for p in report.pairs)
    # Exact pairs come first in report.pairs, then near ones by distance.
    rows = [
        ("byte-identical contents in train and test", report.exact_groups),
        ("  of them found at pHash distance 0", report.exact_groups_hash_zero),
        ("test images with a byte-identical train image", report.exact_test_images),
        ("(test, train) pairs, byte-identical", exact_pairs),
        (f"(test, train) pairs, pHash ≤ {report.max_distance} bits, not identical",
         len(report.pairs) - exact_pairs),
        ("test images with only near duplicates", report.near_test_images),
        ("test images leaking in all", int(report.leaked.sum())),
    ]  # fmt: skip
    screen.print(table("leaks", ["", "count"], [(k, f"{v:,}") for k, v in rows]))
    if report.distance_counts:
        shown = ", ".join(f"{d}: {n:,}" for d, n in report.distance_counts.items())
        screen.print(f"near (not identical) pairs per pHash distance: {shown}")
    exact = [p for p in report.pairs if p.exact]
    near = [p for p in report.pairs if not p.exact]
    for p in exact[: args.show]:
        screen.print(f"  exact: {p.test}  =  {p.train}")
    for p in near[: args.show]:
        screen.print(f"  near:  {p.test}  ~  {p.train}  (d={p.distance}, MAE {p.pixel_mae:.1f})")
    secs = report.seconds
    screen.print(
        f"time: load {secs['load']:.1f} s, hash {secs['hash']:.1f} s, compare "
        f"{report.n_test:,} × {report.n_train:,} in {secs['compare']:.1f} s"
    )
    print(f"wrote {write_csv(report.records(), args.out, LEAK_FIELDS)}")
    if args.checkpoint:
        data = args.test or args.train or str(embedded_data_path())
        scores = score_without_leaks(
            open_scorer(args, args.checkpoint),
            report.leaked_names,
            data,
            None if args.test else "test",
        )
        screen.print(f"decision: {scores.decision}")
        rows = [
            (f"all test images ({scores.n_all:,})", *scores.all.values()),
            (f"without leaks ({scores.n_kept:,})", *scores.kept.values()),
        ]
        screen.print(table("checkpoint", ["", "accuracy", "F1", "ROC-AUC", "AP"], rows))
    return 0
