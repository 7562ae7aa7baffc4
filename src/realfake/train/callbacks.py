"""Callbacks: per-epoch seeding, the per-epoch record (metrics and timings), plain progress
lines, and the run's files (written by the first process only)."""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from realfake.atomic import replacing
from realfake.errors import OutputError
from realfake.runs import ModelSpec, RunDir, read_json, write_json
from realfake.runs.rundir import write_run_spec
from realfake.runs.tracking import MlflowTracker
from realfake.train.datamodule import batch_seed
from realfake.train.provenance import now

log = logging.getLogger(__name__)

# metrics.csv: what the training computed, identical for the same config, seed and machine kind.
EPOCH_COLUMNS = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
# throughput.csv: wall-clock timings, which depend on the machine's load, kept apart.
TIMING_COLUMNS = ("epoch", "images_per_s", "epoch_time_s")


class StepSeed(Callback):
    """Reseed the global RNG (dropout, stochastic layers) from (seed, epoch, batch) every step.

    The random stream of a step then depends only on where it is in the run, so a run resumed
    from an epoch-end checkpoint draws exactly what an uninterrupted run would have drawn.
    (Augmentation is seeded the same way inside the data module.)
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        torch.manual_seed(batch_seed(self.seed, trainer.current_epoch, batch_idx))


def _scalar(metrics: dict[str, Any], key: str) -> float:
    value = metrics.get(key)
    return float(value) if value is not None else math.nan


def read_history(run: RunDir) -> list[dict[str, float]]:
    """The per-epoch rows of metrics.csv joined with throughput.csv's timings (NaN if absent)."""
    rows: dict[int, dict[str, float]] = {}
    for path in (run.metrics_csv, run.throughput_csv):
        if not path.is_file():
            continue
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                values = {k: float(v) if v else math.nan for k, v in row.items()}
                rows.setdefault(int(values["epoch"]), {}).update(values)
    timing = {"images_per_s": math.nan, "epoch_time_s": math.nan}
    return [{**timing, **rows[epoch]} for epoch in sorted(rows)]


class EpochRecorder(Callback):
    """One row per epoch: metrics into metrics.csv, timings into throughput.csv, both to sinks.

    Rows of epochs that a resumed run will redo are dropped first, so the files always describe
    the weights in the latest checkpoint. Images/s and seconds stay out of metrics.csv: they
    change with the machine's load, and metrics.csv must not (same config and seed, same bytes).
    """

    def __init__(self, run: RunDir, sinks: list[Callable[[dict[str, float]], None]]) -> None:
        self.run = run
        self.sinks = sinks
        self.history: list[dict[str, float]] = []
        self._loaded = False
        self._t0 = 0.0
        self._train_time = 0.0
        self._images = 0
        self._rate = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_train_start, not on_fit_start: only here has a resumed run restored its epoch.
        self._load(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run that had already finished trains nothing (no on_train_start): its
        # history is the one on disk.
        if not self._loaded:
            self._load(trainer)

    def _load(self, trainer: L.Trainer) -> None:
        self._loaded = True
        if not trainer.is_global_zero:
            return
        start_epoch = trainer.current_epoch
        self.history = [r for r in read_history(self.run) if r["epoch"] < start_epoch]
        self._rewrite()

    def _rewrite(self) -> None:
        for path, columns in (
            (self.run.metrics_csv, EPOCH_COLUMNS),
            (self.run.throughput_csv, TIMING_COLUMNS),
        ):
            with replacing(path) as tmp, tmp.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                for row in self.history:
                    writer.writerow({k: _fmt(row[k]) for k in columns})

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._train_time = 0.0
        self._images = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._images += int(batch[0].shape[0])
        elapsed = time.perf_counter() - self._t0
        if elapsed > 0:
            self._rate = self._images / elapsed
            pl_module.log("img_s", self._rate, on_step=True, on_epoch=False, prog_bar=True)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.training and not trainer.sanity_checking and self._train_time == 0.0:
            self._train_time = time.perf_counter() - self._t0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        train_time = self._train_time or (time.perf_counter() - self._t0)
        m = trainer.callback_metrics
        world = trainer.world_size
        row = {
            "epoch": float(trainer.current_epoch),
            "step": float(trainer.global_step),
            "train_loss": _scalar(m, "train/loss_epoch"),
            "train_acc": _scalar(m, "train/acc"),
            "val_loss": _scalar(m, "val/loss"),
            "val_acc": _scalar(m, "val/acc"),
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
            # Every rank sees its own share of the data; the run's rate is the sum.
            "images_per_s": self._images * world / train_time if train_time > 0 else math.nan,
            "epoch_time_s": time.perf_counter() - self._t0,
        }
        self.history.append(row)
        self._rewrite()
        for sink in self.sinks:
            sink(row)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"


class PlainProgress(Callback):
    """One line per epoch (and at start and end) for logs and CI, where a live bar is noise."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self._fit_start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self._first_epoch = trainer.current_epoch
        self._max_epochs = trainer.max_epochs or 0
        if trainer.is_global_zero:
            resumed = (
                f", resuming at epoch {trainer.current_epoch + 1}" if trainer.current_epoch else ""
            )
            print(
                f"training {self._max_epochs} epochs, {trainer.num_training_batches} batches "
                f"per epoch{resumed}",
                file=self.stream,
                flush=True,
            )

    def print_epoch(self, row: dict[str, float]) -> None:
        epoch = int(row["epoch"]) + 1
        done = epoch - self._first_epoch
        elapsed = time.perf_counter() - self._fit_start
        total = self._max_epochs
        eta = elapsed / max(1, done) * (total - epoch)
        print(
            f"epoch {epoch}/{total}  train_loss {row['train_loss']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}  "
            f"lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  eta {_duration(eta)}",
            file=self.stream,
            flush=True,
        )


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunRecorder(Callback):
    """The run's files, written by the first process only: spec, manifest, results, tracking.

    At the start of fitting it writes model.json and a manifest marked "running"
    and opens the MLflow run; when fitting ends (or fails, or is interrupted) it records the
    status and the training time; ``finish`` writes results.json and closes the tracking.
    Under several processes the run directory chosen by the first one is shared with the
    others, so every process returns the same path.
    """

    def __init__(
        self,
        run: RunDir,
        spec: ModelSpec,
        manifest: dict[str, Any],
        tracker: MlflowTracker | None,
        tracking_params: dict[str, Any],
        tracking_tags: dict[str, str],
    ) -> None:
        self.run = run
        self.spec = spec
        self.manifest = manifest
        self.tracker = tracker
        self.tracking_params = tracking_params
        self.tracking_tags = tracking_tags
        self.resumed = bool(manifest.get("resumed"))
        self.interrupted = False  # Ctrl-C or SIGTERM ended the fit
        self._started = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Processes started by a launcher named their default run directory from their own
        # clock; the first process's choice is the one that exists.
        self.run = RunDir(Path(trainer.strategy.broadcast(str(self.run.path), src=0)))
        if stage != "fit" or not trainer.is_global_zero:
            return
        write_run_spec(self.run, self.spec)
        self.manifest["world_size"] = trainer.world_size
        write_json(self.run.manifest, self.manifest)
        if self.tracker is not None:
            self._start_tracking()

    def _start_tracking(self) -> None:
        assert self.tracker is not None
        saved = read_json(self.run.tracking)
        self.tracker.start(
            self.run.name,
            self.tracking_params,
            self.tracking_tags,
            run_id=saved.get("mlflow_run_id") if self.resumed else None,
        )
        if self.tracker.run_id:
            write_json(
                self.run.tracking,
                {
                    **saved,
                    "mlflow_run_id": self.tracker.run_id,
                    "tracking_uri": self.tracker.tracking_uri,
                },
            )

    def log_epoch(self, row: dict[str, float]) -> None:
        if self.tracker is not None:
            self.tracker.log_epoch(row)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._ended(trainer, "interrupted" if trainer.interrupted else "finished")

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # SIGTERMException is Lightning's answer to SIGTERM (a SystemExit).
        self.interrupted = isinstance(exception, (KeyboardInterrupt, SystemExit))
        error = None if self.interrupted else f"{type(exception).__name__}: {exception}"
        self._ended(trainer, "interrupted" if self.interrupted else "failed", error)

    def _ended(self, trainer: L.Trainer, status: str, error: str | None = None) -> None:
        if not trainer.is_global_zero or self.manifest.get("status") != "running":
            return
        elapsed = time.perf_counter() - self._started if self._started else 0.0
        self.manifest.update({"status": status, "ended": now()})
        self.manifest.pop("error", None)
        if error:
            self.manifest["error"] = error
        self.manifest["train_time_s"] = float(self.manifest.get("train_time_s", 0.0)) + elapsed
        try:
            write_json(self.run.manifest, self.manifest)
        except OutputError as exc:
            if status == "finished":
                raise
            # Already stopping on an error (a full disk, say): that error is the one to report.
            log.warning("the run's status could not be recorded: %s", exc)
        if self.tracker is not None and status != "finished":
            self.tracker.finish("FAILED" if status == "failed" else "KILLED")

    def finish(self, trainer: L.Trainer, metrics: dict[str, float], classes: list[str]) -> None:
        """results.json and the tracked figures and files (first process only)."""
        if not trainer.is_global_zero:
            return
        write_json(self.run.results, {"metrics": metrics, "classes": classes})
        if self.tracker is not None:
            self.tracker.log_metrics(metrics)
            run = self.run
            self.tracker.log_artifacts([run.config, run.spec, run.manifest, run.metrics_csv])
            self.tracker.log_artifacts([run.results])
            if run.best.exists():
                self.tracker.log_artifacts([run.best], "checkpoints")
            self.tracker.finish()
