"""`realfake demo`: train the default model on the embedded data on CPU and test it."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train the default model on the embedded CIFAKE sample and report test accuracy",
        description="Train the default recipe on the embedded CIFAKE sample (1,000 train / 200 "
        "test images) on the CPU, evaluate on its test split and print where the run lies. "
        "Extra KEY=VALUE overrides are passed to the config as in `realfake train`.",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.set_defaults(handler=run, variadic="overrides")


def run(args: argparse.Namespace) -> int:
    from realfake.cli.train import print_result
    from realfake.inference import Scorer
    from realfake.train import compose, train

    cfg = compose(["experiment=demo", *args.overrides])
    result = train(cfg)
    print_result(result)
    acc = result.metrics.get("test_acc")
    if acc is not None:
        # Training's test step decides by arg-max; so does every command until a threshold is
        # frozen for these weights (`realfake evaluate --freeze-threshold`): say which rule.
        rule = Scorer.open(result.run_dir).describe_rule()
        print(
            f"demo: test accuracy {acc:.1%} on the embedded test split (chance is 50%), "
            f"decided by {rule}, as evaluate, predict and serve decide this run"
        )
    return 0
