"""``realfake explain``: Grad-CAM heat-maps of what a checkpoint looks at, as PNG overlays."""

from __future__ import annotations

import argparse

from realfake.cli._common import (
    add_model_argument,
    add_scorer_arguments,
    open_scorer,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="Grad-CAM overlays: where each image's evidence for its class lies",
        description="Write OUT/<image path>_<class>_<probability>.png for every image: the image "
        "and its Grad-CAM heat-map (last convolutional block, upsampled bilinearly) side by side.",
    )
    add_model_argument(parser)
    parser.add_argument("images", help="an image file, a folder, or a .zip/.tar of images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--target", default=None, help="class to explain (default: each image's predicted class)"
    )
    parser.add_argument(
        "--size", type=positive_int, default=256, help="overlay size in px (default 256)"
    )
    parser.add_argument("--limit", type=positive_int, default=None, help="at most N images")
    add_scorer_arguments(parser)
    parser.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    from collections import Counter

    from realfake.explain.explain import explain

    scorer = open_scorer(args, args.model)
    done = explain(
        scorer, args.images, args.out, target=args.target, size=args.size, limit=args.limit
    )
    print(f"decision: {scorer.describe_rule()}")
    for item in done[:10]:
        print(f"{item.name}: {item.predicted} {item.probability:.3f} -> {item.path}")
    if len(done) > 10:
        print(f"... and {len(done) - 10} more")
    counts = ", ".join(f"{c} {n}" for c, n in Counter(d.predicted for d in done).items())
    print(f"wrote {len(done)} overlays to {args.out} (predicted: {counts})")
    renamed = [d for d in done if d.renamed]
    if renamed:
        shown = "; ".join(f"{d.name} -> {d.path.name}" for d in renamed[:5])
        more = f" and {len(renamed) - 5} more" if len(renamed) > 5 else ""
        print(f"{len(renamed)} overlays got a suffix, their names colliding: {shown}{more}")
    return 0
