"""`realfake models list | summary NAME`: what the model zoo holds and what each model costs."""

from __future__ import annotations

import argparse

# torch is imported inside the handlers so that `realfake --help` does not pay for it.


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the model zoo or summarise one model")
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    list_parser = actions.add_parser("list", help="every model with its parameters and MACs")
    _add_shape_options(list_parser)
    list_parser.set_defaults(handler=list_models)

    summary = actions.add_parser("summary", help="per-layer output shapes and parameters")
    summary.add_argument("name", help="a model name from `realfake models list`")
    _add_shape_options(summary)
    summary.add_argument("--in-channels", type=int, default=3, help="input channels (default 3)")
    summary.add_argument(
        "--stem",
        choices=("cifar", "imagenet"),
        default=None,
        help="stem (head for VGG); default: cifar below 64 px, imagenet from 64 px",
    )
    summary.add_argument(
        "--depth",
        type=int,
        default=None,
        help="show modules nested at most this deep (default: every leaf layer)",
    )
    summary.set_defaults(handler=summarize_model)


def _add_shape_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-size", type=int, default=32, help="input side in px (default 32)")
    parser.add_argument("--num-classes", type=int, default=2, help="output classes (default 2)")


def list_models(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from realfake import models

    table = Table(title=f"realfake models at {args.image_size} px, {args.num_classes} classes")
    table.add_column("model")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("model.options (default)")
    for name in models.list_models():
        # On the meta device nothing is allocated or computed: counting all models is instant.
        with torch.device("meta"):
            model = models.build_model(name, args.num_classes, image_size=args.image_size)
        macs = models.count_macs(model, args.image_size)
        options = ", ".join(f"{k}={v}" for k, v in models.own_options(name).items())
        table.add_row(name, _si(models.count_params(model)), _si(macs), options)
    Console().print(table)
    return 0


def summarize_model(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from realfake import models

    with torch.device("meta"):
        model = models.build_model(
            args.name,
            args.num_classes,
            in_channels=args.in_channels,
            image_size=args.image_size,
            stem=args.stem,
        )
    summary = models.summarize(model, args.image_size, args.in_channels)
    table = Table(title=f"{args.name} on 1×{args.in_channels}×{args.image_size}×{args.image_size}")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("output shape", justify="right")
    table.add_column("params", justify="right")
    for row in summary.rows:
        shown = row.is_leaf if args.depth is None else row.depth <= args.depth
        if shown:
            shape = "×".join(map(str, row.output_shape)) if row.output_shape else "-"
            table.add_row(row.name, row.kind, shape, f"{row.params:,}")
    console = Console()
    console.print(table)
    console.print(f"Total params: {summary.total_params:,} ({_si(summary.total_params)})")
    console.print(f"Trainable params: {summary.trainable_params:,}")
    console.print(f"MACs per image: {summary.macs:,} ({_si(summary.macs)})")
    console.print(f"Parameter memory: {summary.param_bytes / 2**20:,.1f} MiB")
    return 0


def _si(count: int) -> str:
    """1234567 → '1.23M'."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= factor:
            return f"{count / factor:.2f}{suffix}"
    return str(count)
