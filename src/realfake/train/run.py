"""``train(config) -> TrainResult``: one training run from config to run directory and metrics."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from realfake.data import ImageDataModule
from realfake.errors import CheckpointError, ConfigError
from realfake.train import config as C
from realfake.train.callbacks import EpochRecorder, PlainProgress, StepSeed
from realfake.train.checkpoint import load_checkpoint
from realfake.train.module import Classifier, model_from_hparams
from realfake.train.rundir import (
    RunDir,
    default_run_name,
    device_description,
    git_state,
    now,
    package_versions,
    read_json,
    resolve_run,
    write_json,
)
from realfake.train.tracking import MlflowTracker

log = logging.getLogger(__name__)
# Emitted by Lightning's own internals on torch >= 2.10; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, float]  # final figures: best validation, test, timing
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    classes: list[str] = field(default_factory=list)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    mlflow_run_id: str | None = None


def _precision(cfg: C.TrainerConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    # bf16 autocast is the fast correct choice on recent GPUs; on a CPU without AMX it measured
    # 0.73-0.75x the speed of fp32 (BENCHMARKS.md), so fp32 stays the CPU default.
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported() and cfg.accelerator != "cpu":
        return "bf16-mixed"
    return "32-true"


def _progress(cfg: C.LoggingConfig) -> str:
    if cfg.progress != "auto":
        return cfg.progress
    return "rich" if sys.stdout.isatty() else "plain"


def _new_run_dir(cfg: C.TrainConfig) -> RunDir:
    runs = Path(cfg.runs_dir)
    is_child = os.environ.get("LOCAL_RANK", "0") != "0"
    if cfg.name:
        run = RunDir(runs / cfg.name)
        if run.last.exists() and not is_child:
            raise CheckpointError(
                f"run directory {run.path} already holds a training run; resume it with "
                f"`realfake train --resume {run.path}` or choose another name=..."
            )
    else:
        base = default_run_name(cfg.model.name)
        run = RunDir(runs / base)
        suffix = 2
        while run.path.exists() and not is_child:
            run = RunDir(runs / f"{base}-{suffix}")
            suffix += 1
    os.environ["REALFAKE_RUN_NAME"] = run.name
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    return run


def _tracking_tags(run: RunDir, dm: ImageDataModule, git: dict[str, Any]) -> dict[str, str]:
    return {
        "realfake.run_dir": str(run.path.resolve()),
        "git_commit": str(git.get("commit")),
        "git_dirty": str(git.get("dirty")),
        "data_fingerprint": dm.fingerprint,
        "classes": ",".join(dm.classes),
    }


def train(
    config: C.TrainConfig | DictConfig | None = None,
    *,
    resume: str | Path | None = None,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """Train a model as configured; with ``resume`` continue a run directory where it stopped.

    ``callbacks`` are extra Lightning callbacks (a sweep's pruning, a benchmark's snapshots);
    they run after the run's own ones.
    """
    ckpt_path: Path | None = None
    if resume is not None:
        runs_dir = Path(_as_obj(config).runs_dir) if config is not None else Path("runs")
        run = resolve_run(resume, runs_dir)
        cfg = C.to_object(C.load_file(run.config))
        if run.last.exists():
            ckpt_path = run.last
        else:
            warnings.warn(
                f"{run.path} has no last.ckpt yet; starting it again from epoch 1", stacklevel=2
            )
        os.environ["REALFAKE_RUN_NAME"] = run.name
        run.checkpoints.mkdir(parents=True, exist_ok=True)
    else:
        cfg = _as_obj(config if config is not None else C.compose())
        run = _new_run_dir(cfg)

    # Lightning's banner lines (GPU available, tips) drown the progress lines; keep warnings.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = ImageDataModule(cfg.data, seed=cfg.seed)
    dm.setup("fit")
    if cfg.trainer.channels_last is None:  # resolved once, then recorded in config.yaml
        cfg.trainer.channels_last = _pick_channels_last(cfg, list(dm.classes))
    cfg_dict = C.to_dict(cfg)
    module = Classifier(
        config=cfg_dict,
        classes=list(dm.classes),
        mean=[float(v) for v in dm.mean],
        std=[float(v) for v in dm.std],
        data_fingerprint=dm.fingerprint,
    )

    git = git_state()
    is_zero = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    manifest = _manifest(run, cfg, dm, git, resumed=ckpt_path is not None)
    tracker: MlflowTracker | None = None
    if is_zero:
        run.config.write_text(C.to_yaml(cfg))
        write_json(run.manifest, manifest)
        if cfg.logging.mlflow:
            tracker = _start_tracker(run, cfg, cfg_dict, dm, git, resumed=ckpt_path is not None)

    progress = _progress(cfg.logging)
    plain = PlainProgress() if progress == "plain" else None
    sinks = [s for s in (tracker and tracker.log_epoch, plain and plain.print_epoch) if s]
    recorder = EpochRecorder(run.metrics_csv, sinks)
    checkpoint, own = _callbacks(cfg, run, progress)
    all_callbacks = [recorder, *([plain] if plain else []), *own, *(callbacks or [])]
    es = cfg.early_stopping

    t = cfg.trainer
    log.info(
        "settings: precision %s, channels_last %s, compile %s (auto picks what measured fastest)",
        manifest["precision"],
        "on" if manifest["channels_last"] else "off",
        "on" if t.compile else "off",
    )
    trainer = L.Trainer(
        default_root_dir=str(run.path),
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=_precision(t),  # type: ignore[arg-type]
        gradient_clip_val=t.gradient_clip_val,
        deterministic=t.deterministic,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        callbacks=all_callbacks,
        logger=_loggers(cfg, run) or False,
        enable_progress_bar=progress == "rich",
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    started = time.perf_counter()
    status = "failed"
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
        status = "finished" if not trainer.interrupted else "interrupted"
    finally:
        if is_zero:
            manifest.update({"status": status, "ended": now(), "world_size": trainer.world_size})
            manifest["train_time_s"] = manifest.get("train_time_s", 0.0) + (
                time.perf_counter() - started
            )
            write_json(run.manifest, manifest)
            if tracker and status != "finished":
                tracker.finish("FAILED" if status == "failed" else "KILLED")

    best = run.best if run.best.exists() else None
    if es.restore_best and best is not None:
        # Load a real copy of the best weights from disk: a state_dict held by reference
        # would have been overwritten by every later step (the seeds' bug).
        state = load_checkpoint(best)["state_dict"]
        module.load_state_dict(state)
    metrics = _final_metrics(recorder.history, checkpoint, manifest)
    if cfg.evaluate_test and dm.test_split is not None:
        results = trainer.test(module, datamodule=dm, verbose=False)
        if results:
            metrics.update({k.replace("/", "_"): float(v) for k, v in results[0].items()})
    if is_zero:
        write_json(run.results, {"metrics": metrics, "classes": list(dm.classes)})
        if tracker:
            tracker.log_metrics(metrics)
            tracker.log_artifacts([run.config, run.manifest, run.metrics_csv, run.results])
            if best is not None:
                tracker.log_artifacts([best], "checkpoints")
            tracker.finish()
    return TrainResult(
        run_dir=run.path,
        metrics=metrics,
        history=list(recorder.history),
        classes=list(dm.classes),
        best_checkpoint=best,
        last_checkpoint=run.last if run.last.exists() else None,
        mlflow_run_id=tracker.run_id if tracker else None,
    )


def _pick_channels_last(cfg: C.TrainConfig, classes: list[str]) -> bool:
    """Auto ``channels_last``: on for CUDA; on a CPU whichever layout trains this model faster.

    Two timed forward+backward passes per layout on a random batch of the run's size (at most
    128; after one warm-up), on a throw-away copy built under a forked RNG so the run's own
    weights are the same whatever is measured. A fraction of a second for fastnet, ~20 s for
    ResNeXt-29. Several processes (DDP) must agree on the parameters' layout, so they do not
    time: on.
    """
    t = cfg.trainer
    if t.accelerator not in ("auto", "cpu"):
        return True
    if t.accelerator == "auto" and torch.cuda.is_available():
        return True
    several = str(t.devices) not in ("auto", "1") or t.num_nodes > 1 or "ddp" in t.strategy
    if several or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return True
    size = cfg.data.image_size
    hparams = {"model": C.to_dict(cfg)["model"], "classes": classes, "image_size": size}
    with torch.random.fork_rng(devices=[]):
        model = model_from_hparams(hparams)
        x = torch.randn(min(cfg.data.batch_size, 128), 3, size, size)
        y = torch.randint(0, len(classes), (x.shape[0],))
        rates = {}
        for layout in (torch.contiguous_format, torch.channels_last):
            model = model.to(memory_format=layout)
            xl = x.contiguous(memory_format=layout)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                torch.nn.functional.cross_entropy(model(xl), y).backward()
                times.append(time.perf_counter() - start)
                model.zero_grad(set_to_none=True)
            rates[layout] = x.shape[0] / min(times[1:])
    pick = rates[torch.channels_last] > rates[torch.contiguous_format]
    log.info(
        "channels_last %s: %.0f vs %.0f img/s (forward+backward, batch %d, NHWC vs NCHW)",
        "on" if pick else "off",
        rates[torch.channels_last],
        rates[torch.contiguous_format],
        x.shape[0],
    )
    return pick


def _manifest(
    run: RunDir, cfg: C.TrainConfig, dm: ImageDataModule, git: dict[str, Any], resumed: bool
) -> dict[str, Any]:
    """What a report needs to trust the run: code, data, seed, versions, device, times."""
    manifest = read_json(run.manifest) if resumed else {}
    sizes = {
        name: len(split.labels) if split is not None else 0
        for name, split in (
            ("train", dm.train_split),
            ("val", dm.val_split),
            ("test", dm.test_split),
        )
    }
    manifest.update(
        {
            "name": run.name,
            "status": "running",
            "git": git,
            "data": {
                "source": cfg.data.source or "embedded:cifake-mini",
                "test_source": cfg.data.test_source,
                "fingerprint": dm.fingerprint,
                "classes": list(dm.classes),
                "sizes": sizes,
            },
            "seed": cfg.seed,
            "packages": package_versions(),
            "device": device_description(),
            "precision": _precision(cfg.trainer),
            "channels_last": cfg.trainer.channels_last is not False,
        }
    )
    manifest.setdefault("started", now())
    if resumed:
        manifest.setdefault("resumed", []).append(now())
    return manifest


def _start_tracker(
    run: RunDir,
    cfg: C.TrainConfig,
    cfg_dict: dict[str, Any],
    dm: ImageDataModule,
    git: dict[str, Any],
    resumed: bool,
) -> MlflowTracker:
    """Open the MLflow run (the same one again when resuming) and remember its id."""
    tracking = read_json(run.tracking)
    tracker = MlflowTracker(cfg.logging.tracking_uri, cfg.logging.experiment_name)
    tracker.start(
        run.name,
        C.flatten(cfg_dict),
        _tracking_tags(run, dm, git),
        run_id=tracking.get("mlflow_run_id") if resumed else None,
    )
    if tracker.run_id:
        write_json(
            run.tracking,
            {**tracking, "mlflow_run_id": tracker.run_id, "tracking_uri": tracker.tracking_uri},
        )
    return tracker


def _callbacks(
    cfg: C.TrainConfig, run: RunDir, progress: str
) -> tuple[ModelCheckpoint, list[Callback]]:
    """Seeding, checkpoints (best and last), progress bar, early stopping, weight averaging."""
    es = cfg.early_stopping
    best = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=es.monitor,
        mode=es.mode,
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    # A second, unmonitored checkpoint for "last": Lightning 2.6's save_last only writes when a
    # new best was saved in the same step, which would leave last.ckpt behind the run.
    last = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="last",
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    callbacks: list[Callback] = [StepSeed(cfg.seed), best, last]
    if progress == "rich":
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    if es.enabled:
        callbacks.append(
            EarlyStopping(
                monitor=es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta
            )
        )
    if cfg.trainer.ema_decay:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(EMAWeightAveraging(decay=cfg.trainer.ema_decay))
    return best, callbacks


def _loggers(cfg: C.TrainConfig, run: RunDir) -> list[Any]:
    """Optional Lightning loggers (CSV and MLflow are handled by the run itself)."""
    loggers: list[Any] = []
    if cfg.logging.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run.path), name="tensorboard", version=""))
    if cfg.logging.wandb and cfg.logging.wandb_mode != "disabled":
        loggers.extend(_wandb_logger(cfg, run))
    return loggers


def _as_obj(config: C.TrainConfig | DictConfig) -> C.TrainConfig:
    if isinstance(config, DictConfig):
        return C.to_object(config)
    if isinstance(config, C.TrainConfig):
        return C.to_object(OmegaConf.structured(config))  # validates types
    raise ConfigError(f"train() takes a TrainConfig or DictConfig, not {type(config).__name__}")


def _final_metrics(
    history: list[dict[str, float]], checkpoint: ModelCheckpoint, manifest: dict[str, Any]
) -> dict[str, float]:
    out: dict[str, float] = {"epochs": float(len(history))}
    if history:
        last = history[-1]
        out.update({f"last_{k}": last[k] for k in ("train_loss", "val_loss", "val_acc")})
        rates = [r["images_per_s"] for r in history if not math.isnan(r["images_per_s"])]
        if rates:
            out["images_per_s"] = sorted(rates)[len(rates) // 2]
        best = min(history, key=lambda r: r["val_loss"] if not math.isnan(r["val_loss"]) else 1e9)
        out.update(
            {
                "best_epoch": best["epoch"] + 1,
                "best_val_loss": best["val_loss"],
                "best_val_acc": max(r["val_acc"] for r in history),
            }
        )
    if checkpoint.best_model_score is not None:
        out["best_monitor"] = float(checkpoint.best_model_score)
    out["train_time_s"] = float(manifest.get("train_time_s", 0.0))
    return out


def _wandb_logger(cfg: C.TrainConfig, run: RunDir) -> list[Any]:
    try:
        from lightning.pytorch.loggers import WandbLogger

        return [
            WandbLogger(
                project=cfg.logging.wandb_project,
                name=run.name,
                save_dir=str(run.path),
                offline=cfg.logging.wandb_mode == "offline",
                config=C.to_dict(cfg),
            )
        ]
    except Exception as exc:  # missing package or no login: tracking must not stop training
        warnings.warn(f"Weights & Biases logging disabled: {exc}", RuntimeWarning, stacklevel=2)
        return []
