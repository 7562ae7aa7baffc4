"""The CPU recipe on CIFAKE (issues 7, 18): test accuracy against training wall time, over seeds.

    python benchmarks/bench_recipe.py --seeds 0 1 2      # experiment=cifake_fast, ~15 min a seed

Each seed trains ``experiment=cifake_fast`` (or ``--experiment``; the 60,000-image sample, tested
on the official 20,000-image test split) with a callback that keeps a copy of the weights and the
elapsed training wall time at the end of every epoch. After training, every copy is scored on the
test split with the run's TTA: one curve per seed. Training time is the whole ``fit`` (training
and the per-epoch validation), measured before the snapshots are scored, so scoring adds nothing
to it. The table also shows each epoch's validation accuracy, the only figure the recipe's
settings were chosen on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from common import BENCHMARKS_MD, cifake_sample_paths, header, load_average, publish

HEADING = "## Detection quality: the CPU recipe on CIFAKE"


class EpochSnapshots(L.Callback):
    """A CPU copy of the network's weights and the fit's elapsed seconds after every epoch."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[float, dict[str, torch.Tensor]]] = []
        self._t0 = 0.0
        self._paused = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        started = time.perf_counter()
        state = {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()}
        self.snapshots.append((started - self._t0 - self._paused, state))
        self._paused += time.perf_counter() - started  # copying is not training time


def run_seed(seed: int, experiment: str, overrides: list[str], runs_dir: Path) -> dict:
    """Train one seed and score its snapshots; a seed already done in ``runs_dir`` is reused."""
    from realfake.inference import Predictor
    from realfake.inference.splits import eval_images
    from realfake.train import compose, train

    name = f"{experiment.replace('_', '-')}-s{seed}"
    done = runs_dir / name / "recipe_curve.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if saved["overrides"] == overrides and saved.get("experiment") == experiment:
            print(f"seed {seed}: reusing {done}")
            return {**saved, "config": compose(saved["compose"])}
    composed = [
        "data=cifake_sample",
        *cifake_sample_paths(),
        f"experiment={experiment}",
        f"seed={seed}",
        "logging=offline",
        f"runs_dir={runs_dir}",
        f"name={name}",
        *overrides,
    ]
    cfg = compose(composed)
    snaps = EpochSnapshots()
    result = train(cfg, callbacks=[snaps])
    predictor = Predictor.load(result.run_dir)
    images = eval_images(predictor, None, None)
    labels = images.split.labels.numpy()
    curve = []
    for seconds, state in snaps.snapshots:
        predictor.model.load_state_dict(state)
        probs = predictor.probabilities(images.split.images, batch_size=512)  # the run's TTA
        curve.append((seconds, float((probs.argmax(1) == labels).mean())))
        print(f"seed {seed}: {seconds:6.0f} s  test acc {curve[-1][1]:.4f}", flush=True)
    record = {
        "seed": seed,
        "experiment": experiment,
        "overrides": overrides,
        "val_acc": [row["val_acc"] for row in result.history],
        "compose": composed,
        "curve": curve,
        "test_acc": result.metrics.get("test_acc", float("nan")),
        "train_time_s": result.metrics["train_time_s"],
        "images_per_s": result.metrics.get("images_per_s", float("nan")),
        "best_epoch": result.metrics.get("best_epoch"),
        "test_images": len(labels),
        "load_average": load_average(),
    }
    done.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "config": cfg}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        t, acc = zip(*r["curve"], strict=True)
        ax.plot(np.array(t) / 60, np.array(acc) * 100, marker="o", label=f"seed {r['seed']}")
    ax.axhline(97, color="grey", linestyle="--", linewidth=1, label="goal 97%")
    ax.axvline(15, color="grey", linestyle=":", linewidth=1, label="15 min")
    ax.set_xlabel("training wall time (min, 2 CPU cores)")
    ax.set_ylabel("CIFAKE test accuracy (%)")
    ax.set_title(f"{results[0]['config'].model.name}, experiment={results[0]['experiment']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--experiment", default="cifake_fast", help="the recipe (cifake_fast)")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides of the recipe")
    parser.add_argument(
        "--runs-dir",
        default=None,
        help="keep the runs here (default: a temporary folder); seeds already done in it are "
        "reused, so an interrupted benchmark goes on where it stopped",
    )
    parser.add_argument("--no-update", action="store_true", help="print only")
    args = parser.parse_args()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="realfake-recipe-"))
    results = [run_seed(seed, args.experiment, args.overrides, runs_dir) for seed in args.seeds]

    cfg = results[0]["config"]
    finals = [r["curve"][-1][1] for r in results]
    times = [r["train_time_s"] for r in results]
    epochs = len(results[0]["curve"])
    spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
    figure = Path("benchmarks/figures/recipe_curve.png")
    plot(results, BENCHMARKS_MD.parent / figure)
    lines = [
        *header(),
        f"- Recipe: `experiment={args.experiment}` ({cfg.model.name}, {cfg.optim.name} lr "
        f"{cfg.optim.lr:g}, {cfg.sched.name}, batch {cfg.data.batch_size}, {epochs} epochs, "
        f"label smoothing {cfg.trainer.label_smoothing:g}, flip TTA "
        f"{'on' if cfg.trainer.flip_tta else 'off'}"
        + (f", overrides {' '.join(args.overrides)}" if args.overrides else "")
        + f"); train on `train.tar` less {cfg.data.val_fraction:.0%} validation, test on "
        f"`test.tar` ({results[0]['test_images']:,} images).",
        "- Time: wall clock of the whole fit (training and per-epoch validation) at the end of "
        "each epoch; the weights of that moment are scored on the test split afterwards.",
        "",
        f"**Test accuracy after {epochs} epochs: {statistics.mean(finals):.2%} ± "
        f"{spread:.2%}** (mean ± std over seeds {', '.join(str(r['seed']) for r in results)}) "
        f"in {statistics.mean(times) / 60:.1f} min of training on average "
        f"(goal ≥ 97% within 15 min).",
        "",
        f"![accuracy against time]({figure})",
        "",
        "Test accuracy (and validation accuracy, 3,000 images of `train.tar`) at the end of "
        "each epoch:",
        "",
        "| seed | "
        + " | ".join(f"epoch {i + 1}" for i in range(epochs))
        + " | train img/s | load average after |",
        "| ---: | " + " | ".join("---:" for _ in range(epochs)) + " | ---: | --- |",
    ]
    for r in results:
        vals = r.get("val_acc") or [float("nan")] * len(r["curve"])
        cells = [
            f"{acc:.2%} (val {val:.2%}) @ {t / 60:.1f} min"
            for (t, acc), val in zip(r["curve"], vals, strict=True)
        ]
        lines.append(
            f"| {r['seed']} | " + " | ".join(cells) + f" | {r['images_per_s']:.0f} | "
            f"{r['load_average']} |"
        )
    publish(HEADING, lines, update=not args.no_update)


if __name__ == "__main__":
    main()
