"""TPE against random search on CIFAKE, and what pruning saves (issue 16).

Part 1: for each sampler and sweep seed, a sweep of ``--trials`` one-epoch trials of the
cifake_fast recipe's search space (configs/sweep/cifake_fast.yaml), each epoch limited to
``--images`` training images of the 60,000-image sample; the best validation accuracy found,
mean over seeds. Part 2 (``--pruning-trials`` > 0): the same space with ``--pruning-epochs``
epochs per trial, TPE with the median pruner against TPE without, same seed: best accuracy and
wall time. Every sweep is an Optuna study in ``--out``, so an interrupted benchmark continues
where it stopped when run again with the same arguments.

    .venv/bin/python benchmarks/bench_sweep.py --trials 8 --seeds 2 --images 2000
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from common import SHARED, cifake_sample_paths, load_average, machine

from realfake.studies.sweep import run_sweep
from realfake.studies.sweepfile import load_sweep


def overrides(images: int, batch: int, epochs: int) -> list[str]:
    # batch_size is searched; the per-epoch image budget is fixed through the batch count of
    # the largest batch, so a trial with smaller batches sees no more images.
    return [
        f"trainer.max_epochs={epochs}",
        f"trainer.limit_train_batches={max(1, images // batch)}",
        "logging.mlflow=false",
        "logging.progress=none",
        "evaluate_test=false",
    ]


def sweep(
    name: str, sampler: str, pruner: str, seed: int, trials: int, extra: list[str], out: Path
):
    spec = load_sweep("cifake_fast")
    spec.params.pop("data.batch_size")  # fixed below: the image budget must not depend on it
    started, cpu = time.perf_counter(), _cpu_seconds()
    result = run_sweep(
        spec,
        trials=trials,
        study_name=name,
        overrides=[*extra, *cifake_sample_paths(), "data.batch_size=64"],
        out_root=out,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
    )
    study = optuna.load_study(study_name=name, storage=result.storage)
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return Outcome(result.best_value, time.perf_counter() - started, _cpu_seconds() - cpu, epochs)


@dataclass
class Outcome:
    best: float
    wall: float  # seconds of this call (a continued sweep counts only what it ran now)
    cpu: float  # CPU seconds of this process and its children in this call
    epochs: int  # training epochs the study's trials ran (pruned trials stop early)


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--images", type=int, default=10_000, help="training images per epoch")
    p.add_argument("--samplers", default="tpe,random")
    p.add_argument("--pruning-trials", type=int, default=0)
    p.add_argument("--pruning-epochs", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/sweeps"))
    args = p.parse_args()
    if not (SHARED / "train.tar").exists():
        raise SystemExit(f"skipped: the CIFAKE sample is not at {SHARED}")
    print(f"machine: {machine()}; load average at start {load_average()}")
    one_epoch = overrides(args.images, 64, 1)
    for sampler in args.samplers.split(","):
        best, times = [], []
        for seed in range(args.seeds):
            name = f"{sampler}-t{args.trials}-i{args.images}-s{seed}"
            got = sweep(name, sampler, "none", seed, args.trials, one_epoch, args.out)
            best.append(got.best)
            times.append(got.wall)
            print(
                f"{sampler} seed {seed}: best val acc {got.best:.4f} "
                f"({got.wall:.0f} s, {got.cpu:.0f} CPU s this call)",
                flush=True,
            )
        spread = f" ± {statistics.stdev(best):.4f}" if len(best) > 1 else ""
        print(
            f"{sampler}: best val acc {statistics.mean(best):.4f}{spread} over {args.seeds} "
            f"seeds ({args.trials} trials of 1 epoch of {args.images} images each)"
        )
    if args.pruning_trials:
        multi = overrides(args.images, 64, args.pruning_epochs)
        for pruner in ("none", "median"):
            name = f"prune-{pruner}-t{args.pruning_trials}-e{args.pruning_epochs}-i{args.images}"
            got = sweep(name, "tpe", pruner, 0, args.pruning_trials, multi, args.out)
            print(
                f"tpe, pruner {pruner}: best val acc {got.best:.4f}, {got.epochs} epochs trained, "
                f"wall {got.wall:.0f} s, CPU {got.cpu:.0f} s (this call)",
                flush=True,
            )
    print(f"load average at end {load_average()}")


if __name__ == "__main__":
    main()
