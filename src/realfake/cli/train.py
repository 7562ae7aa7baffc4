"""`realfake train`: compose a config from experiment/group choices and overrides, then train."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (configs + dotted overrides)",
        description="Train a model. Overrides: experiment=NAME, GROUP=NAME (data, model, optim, "
        "sched, trainer, logging) and dotted keys such as optim.lr=1e-3 trainer.max_epochs=20. "
        "resume=latest or --resume RUN continues a run where it stopped.",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config choices/overrides")
    p.add_argument("--resume", metavar="RUN", help="run directory (or name, or 'latest') to resume")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlruns.db)")
    p.add_argument("--print-config", action="store_true", help="print the config and exit")
    p.set_defaults(handler=run, variadic="overrides")


def run(args: argparse.Namespace) -> int:
    from realfake.train import config as C

    overrides = list(args.overrides)
    resume = args.resume
    rest = []
    for item in overrides:
        if item.startswith("resume="):
            resume = item.partition("=")[2]
        else:
            rest.append(item)
    if args.tracking_uri:
        rest.append(f"logging.tracking_uri={args.tracking_uri}")
    cfg = C.compose(rest)
    if args.print_config:
        print(C.to_yaml(cfg), end="")
        return 0
    from realfake.train import train

    if resume is not None and rest:
        # A resumed run continues its own saved config; only where runs live may be given.
        allowed = {"runs_dir"}
        extra = [r for r in rest if r.partition("=")[0] not in allowed]
        if extra:
            from realfake.errors import ConfigError

            raise ConfigError(
                f"--resume continues the run's saved config; drop the overrides {extra}"
            )
    result = train(cfg, resume=resume)
    if result.primary:  # the other processes of a DDP run have nothing of their own to say
        print_result(result)
    return 0


def print_result(result) -> None:
    m = result.metrics
    parts = [f"run: {result.run_dir}"]
    if "best_val_acc" in m:
        parts.append(f"best val acc {m['best_val_acc']:.4f}")
    if "test_acc" in m:
        parts.append(f"test acc {m['test_acc']:.4f}  test loss {m['test_loss']:.4f}")
    if "train_time_s" in m:
        parts.append(f"train time {m['train_time_s']:.0f}s")
    print("  ".join(parts))
    if result.best_checkpoint:
        print(f"best checkpoint: {result.best_checkpoint}")
    if result.mlflow_run_id:
        browse = f"mlflow ui --backend-store-uri {result.tracking_uri}"
        print(f"mlflow run {result.mlflow_run_id} ({browse})")
