"""``realfake explain``: Grad-CAM heat-maps of what a checkpoint looks at, as PNG overlays."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="Grad-CAM overlays: where each image's evidence for its class lies",
        description="Write OUT/<image path>_<class>_<probability>.png for every image: the image "
        "and its Grad-CAM heat-map (last convolutional block, upsampled bilinearly) side by side.",
    )
    parser.add_argument("checkpoint", help="run directory or .ckpt file")
    parser.add_argument("images", help="an image file, a folder, or a .zip/.tar of images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--target", default=None, help="class to explain (default: each image's predicted class)"
    )
    parser.add_argument("--size", type=int, default=256, help="overlay size in px (default 256)")
    parser.add_argument("--limit", type=int, default=None, help="at most N images")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    from collections import Counter

    from realfake.explain.explain import explain

    done = explain(
        args.checkpoint,
        args.images,
        args.out,
        target=args.target,
        size=args.size,
        limit=args.limit,
        device=args.device,
    )
    for item in done[:10]:
        print(f"{item.name}: {item.predicted} {item.probability:.3f} -> {item.path}")
    if len(done) > 10:
        print(f"... and {len(done) - 10} more")
    counts = ", ".join(f"{c} {n}" for c, n in Counter(d.predicted for d in done).items())
    print(f"wrote {len(done)} overlays to {args.out} (predicted: {counts})")
    return 0
