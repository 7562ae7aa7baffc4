"""``train(config) -> TrainResult``: one training run, from config to run directory and metrics.

The steps, in order: resolve the config; build the trainer (it knows this process's rank);
load the data; build the network and its LightningModule; prepare the run directory (the
first process claims it with the resolved config); attach the callbacks (the first process
records the run); fit; test the best weights; record.

Nothing here touches process-wide state that outlives the call: warnings and Lightning's log
level are changed inside the call only, the run's name travels in arguments, ranks come from
the trainer, and a process group the call created is closed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from realfake.data.batches import NativeCropDataset
from realfake.errors import CheckpointError, ConfigError, OutputError, TrainingInterrupted
from realfake.models.layers import PatchWhitening, fit_whitening
from realfake.runs import ModelSpec, RunDir, load_checkpoint, read_json, resolve_run
from realfake.runs.lock import RunLock
from realfake.runs.tracking import MlflowTracker
from realfake.train import config as C
from realfake.train.callbacks import (
    EpochRecorder,
    PlainProgress,
    RunRecorder,
    StepSeed,
    read_history,
)
from realfake.train.checkpoint_io import (
    AtomicCheckpointIO,
    remove_partial_writes,
    resume_checkpoint,
)
from realfake.train.datamodule import ImageDataModule
from realfake.train.module import Classifier
from realfake.train.provenance import device_description, git_state, now, package_versions

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, float]  # final figures: best validation, test, timing
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    classes: list[str] = field(default_factory=list)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    primary: bool = True  # False in the other processes of a multi-process run


@dataclass
class RunPlan:
    """The resolved config, its run directory and where a resumed run continues from."""

    cfg: C.TrainConfig
    run: RunDir
    resume_from: Path | None = None  # a resumed run's newest intact checkpoint
    resumed: bool = False
    lock: RunLock | None = None  # held by the first process for the life of the training


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
    cfg, resumed_run = resolve_config(config, resume)
    if resumed_run is not None and _finished(resumed_run):
        return finished_result(resumed_run)
    distributed_before = _distributed()
    plan: RunPlan | None = None
    try:
        with _quiet_lightning():
            trainer = build_trainer(cfg)
            _seed(cfg.seed)
            data = ImageDataModule(cfg.data, seed=cfg.seed)
            data.setup("fit")
            module = build_module(cfg, data, trainer)
            plan = prepare_run(cfg, resumed_run, primary=trainer.is_global_zero)
            recorder, epochs, best = attach_callbacks(trainer, plan, module, data, callbacks)
            fit(trainer, module, data, plan, recorder)
            metrics = final_metrics(epochs.history, best, recorder.manifest)
            metrics.update(test(trainer, module, data, plan))
            recorder.finish(trainer, metrics, list(data.classes))
            run = recorder.run
            result = TrainResult(
                run_dir=run.path,
                metrics=metrics,
                history=list(epochs.history),
                classes=list(data.classes),
                best_checkpoint=run.best if run.best.exists() else None,
                last_checkpoint=run.last if run.last.exists() else None,
                mlflow_run_id=recorder.tracker.run_id if recorder.tracker else None,
                tracking_uri=recorder.tracker.tracking_uri if recorder.tracker else None,
                primary=trainer.is_global_zero,
            )
    finally:
        if plan is not None and plan.lock is not None:
            plan.lock.release()
    if _distributed() and not distributed_before:
        _close_process_group()
    return result


# --- the steps ------------------------------------------------------------------------------


def resolve_config(
    config: C.TrainConfig | DictConfig | None, resume: str | Path | None
) -> tuple[C.TrainConfig, RunDir | None]:
    """The validated config (a resumed run's own saved one) and the run being resumed."""
    if resume is None:
        cfg = _as_obj(config if config is not None else C.compose())
        if cfg.name:
            _check_name(cfg.name)  # before any work: the name decides where files go
            existing = RunDir(Path(cfg.runs_dir) / cfg.name)
            if existing.is_run():
                RunLock(existing.path).check()  # a live training: "in use", said by the lock
                raise _name_taken(existing)
        return cfg, None
    runs_dir = Path(_as_obj(config).runs_dir) if config is not None else Path("runs")
    run = resolve_run(resume, runs_dir)
    return C.to_object(C.load_file(run.config)), run


def build_trainer(cfg: C.TrainConfig) -> L.Trainer:
    """The Lightning trainer, before any run-specific callback (those need the run directory)."""
    t = cfg.trainer
    progress = _progress(cfg.logging)
    own: list[Callback] = []
    if progress == "rich":
        from lightning.pytorch.callbacks import RichProgressBar

        own.append(RichProgressBar(leave=True))
    return L.Trainer(
        default_root_dir=cfg.runs_dir,
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
        callbacks=own,
        logger=False,
        plugins=[AtomicCheckpointIO()],
        # cuDNN's autotuner picks kernels by timing them: load would then change the numerics.
        benchmark=False,
        # The data module shards every split itself, without the repeated images of
        # Lightning's DistributedSampler (data/batches.py).
        use_distributed_sampler=False,
        enable_checkpointing=False,  # the run's own checkpoints are attached below
        enable_progress_bar=progress == "rich",
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def prepare_run(cfg: C.TrainConfig, resumed: RunDir | None, primary: bool) -> RunPlan:
    """The run directory, owned by the first process for the life of the training.

    A new directory is claimed by taking its lock, then creating its config.yaml exclusively;
    a resumed one by taking its lock and checking that its last checkpoint can be read (a
    damaged one stops here, before the run's files change). Two trainings with the same
    ``name=`` cannot share a directory: the second stops with one sentence. Other processes
    only name it; the first process's choice reaches them when fitting starts.
    """
    if resumed is not None:
        return _plan_resume(cfg, resumed, primary)
    runs = Path(cfg.runs_dir)
    if cfg.name:
        run = RunDir(runs / cfg.name)
        if not primary:
            return RunPlan(cfg, run)
        lock = _claim(run, C.to_yaml(cfg))
        if lock is None:
            raise _name_taken(run)
        return RunPlan(cfg, run, lock=lock)
    base = f"{cfg.model.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run, suffix = RunDir(runs / base), 2
    if not primary:
        return RunPlan(cfg, run)
    while (lock := _claim(run, C.to_yaml(cfg), fresh=True)) is None:
        run, suffix = RunDir(runs / f"{base}-{suffix}"), suffix + 1
    return RunPlan(cfg, run, lock=lock)


def _plan_resume(cfg: C.TrainConfig, run: RunDir, primary: bool) -> RunPlan:
    """Continue from the newest checkpoint that loads (last.ckpt, else best.ckpt, else any).

    Every process picks the same file from the same files; the first one owns the run, removes
    the temporary files of writes a killed training left, and says which checkpoint it used.
    A run whose checkpoints all fail to load stops here, before any of its files change.
    """
    if not primary:
        return RunPlan(cfg, run, resume_checkpoint(run)[0], resumed=True)
    lock = RunLock(run.path)
    lock.acquire()
    try:
        source, passed_over = resume_checkpoint(run)
        remove_partial_writes(run)
    except BaseException:
        lock.release()
        raise
    if source is None:
        warnings.warn(
            f"{run.path} has no checkpoint yet; starting it again from epoch 1", stacklevel=4
        )
    else:
        epoch = int(load_checkpoint(source).get("epoch", -1)) + 1
        used = f"{source.relative_to(run.path)} (after epoch {epoch})"
        if passed_over:
            log.warning("resuming %s from %s: %s", run.path, used, "; ".join(passed_over))
        else:
            log.info("resuming %s from %s", run.path, used)
    return RunPlan(cfg, run, source, resumed=True, lock=lock)


def _finished(run: RunDir) -> bool:
    """Whether ``run`` finished training (a live training's lock is an error, as for a resume)."""
    RunLock(run.path).check()
    return read_json(run.manifest).get("status") == "finished"


def finished_result(run: RunDir) -> TrainResult:
    """A finished run as its files record it: resuming it trains nothing and writes nothing.

    Resuming would redo its test, rewrite model.json (dropping a frozen threshold), metrics.csv,
    results.json and manifest.json for nothing; its evaluations and reports would then describe
    files that changed under them.
    """
    results = read_json(run.results)
    history = read_history(run)
    tracking = read_json(run.tracking)
    log.warning(
        "%s finished its training already (%d epochs); nothing was changed. To train further, "
        "start a new run with another name=...",
        run.path,
        len(history),
    )
    return TrainResult(
        run_dir=run.path,
        metrics={k: float(v) for k, v in results.get("metrics", {}).items() if v is not None},
        history=history,
        classes=list(results.get("classes", [])),
        best_checkpoint=run.best if run.best.exists() else None,
        last_checkpoint=run.last if run.last.exists() else None,
        mlflow_run_id=tracking.get("mlflow_run_id"),
        tracking_uri=tracking.get("tracking_uri"),
    )


def _name_taken(run: RunDir) -> CheckpointError:
    """The error for a ``name=`` whose folder holds a run: what to do depends on its status."""
    status = read_json(run.manifest).get("status") if run.manifest.is_file() else None
    if status == "finished":
        return CheckpointError(
            f"run directory {run.path} already holds a finished run; choose another name=... "
            "for a new run (a finished run is never trained further or overwritten)"
        )
    return CheckpointError(
        f"run directory {run.path} already holds an unfinished run (status "
        f"{status or 'not started'}); continue it with `realfake train --resume {run.path}` "
        "or choose another name=..."
    )


def _check_name(name: str) -> None:
    """``name=`` names a folder inside ``runs_dir``, never a path elsewhere."""
    if name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ConfigError(
            f"bad value for config key 'name': {name!r}; expected a folder name inside "
            "runs_dir (no '/', '..' or absolute path); set runs_dir= to choose the parent"
        )


def build_module(cfg: C.TrainConfig, data: ImageDataModule, trainer: L.Trainer) -> Classifier:
    """The network from its spec, wrapped in the LightningModule; channels_last resolved."""
    spec = ModelSpec.from_training_config(C.to_dict(cfg), data.classes, data.mean, data.std)
    if cfg.trainer.channels_last is None:  # resolved once, then recorded in config.yaml
        cfg.trainer.channels_last = auto_channels_last(spec, trainer)
    model = spec.build_model()
    fit_data_dependent(model, data)
    return Classifier(model, spec, cfg)


# Training images the patch whitening is fitted to: 5,000 32-px images give 4.8 million patches
# for a 12×12 covariance (airbench fits on 5,000 too).
WHITENING_IMAGES = 5000


def fit_data_dependent(model: torch.nn.Module, data: ImageDataModule) -> None:
    """Fit the layers set from the data (fastnet's ``whiten=true``) before training starts.

    They see evenly spaced training images, normalised as every batch is; a resumed run then
    loads its own fitted filters with the rest of the weights, so it never depends on this.
    """
    if not any(isinstance(m, PatchWhitening) for m in model.modules()):
        return
    split, step = data.train_split, max(1, len(data.train_split) // WHITENING_IMAGES)
    if data.config.native:
        # The crops the network trains on (epoch 0's), not whole images of several sizes.
        crops = NativeCropDataset(split, data.config.image_size, data.seed)
        picked = range(0, len(split), step)[:WHITENING_IMAGES]
        sample, _ = crops.__getitems__([(0, i, 0) for i in picked])
    else:
        sample = split.images[::step][:WHITENING_IMAGES]
    fit_whitening(model, data.normalize(sample))
    log.info("patch whitening fitted to %d training images", len(sample))


def attach_callbacks(
    trainer: L.Trainer,
    plan: RunPlan,
    module: Classifier,
    data: ImageDataModule,
    extra: list[Callback] | None,
) -> tuple[RunRecorder, EpochRecorder, ModelCheckpoint]:
    """Seeding, the run's record, checkpoints (best and last), early stopping, averaging."""
    cfg, run = plan.cfg, plan.run
    cfg_dict = C.to_dict(cfg)
    git = git_state()
    manifest = _manifest(plan, data, git)
    tracker = (
        MlflowTracker(
            cfg.logging.tracking_uri, cfg.logging.experiment_name, cfg.logging.parent_run_id
        )
        if cfg.logging.mlflow and trainer.is_global_zero
        else None
    )
    recorder = RunRecorder(
        run,
        module.spec,
        manifest,
        tracker,
        C.flatten(cfg_dict),
        {
            "realfake.run_dir": str(run.path.resolve()),
            "git_commit": str(git.get("commit")),
            "git_dirty": str(git.get("dirty")),
            "data_fingerprint": data.fingerprint,
            "classes": ",".join(data.classes),
        },
    )
    plain = PlainProgress() if _progress(cfg.logging) == "plain" else None
    sinks = [recorder.log_epoch, *([plain.print_epoch] if plain else [])]
    epochs = EpochRecorder(run, sinks)
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
    callbacks: list[Callback] = [recorder, epochs, *([plain] if plain else []), StepSeed(cfg.seed)]
    if es.enabled:
        callbacks.append(
            EarlyStopping(
                monitor=es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta
            )
        )
    if cfg.trainer.ema_decay:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(EMAWeightAveraging(decay=cfg.trainer.ema_decay))
    # Checkpoints last: they save what the callbacks before them have updated.
    trainer.callbacks.extend([*callbacks, *(extra or []), best, last])
    trainer.loggers = _loggers(cfg, run)
    return recorder, epochs, best


def fit(
    trainer: L.Trainer,
    module: Classifier,
    data: ImageDataModule,
    plan: RunPlan,
    recorder: RunRecorder,
) -> None:
    """Train; Ctrl-C and SIGTERM end it as "interrupted" and raise TrainingInterrupted."""
    t = plan.cfg.trainer
    if trainer.is_global_zero:
        log.info(
            "settings: precision %s, channels_last %s, compile %s (auto rules, never timings: "
            "bf16 on CUDA with bf16, else fp32; channels_last on except for VGG on a CPU)",
            _precision(t),
            "on" if t.channels_last else "off",
            "on" if t.compile else "off",
        )
    try:
        trainer.fit(module, datamodule=data, ckpt_path=plan.resume_from, weights_only=True)
    except OutputError as exc:
        # A checkpoint or record that could not be written (a full disk): the run is recorded
        # as failed and its previous checkpoints are whole, so it can go on from them.
        raise OutputError(
            f"{exc}; the run stopped as failed, and once that is fixed "
            f"`realfake train --resume {recorder.run.path}` continues it from its newest intact "
            "checkpoint"
        ) from None
    except SIGTERMException:
        raise TrainingInterrupted(recorder.run.path, "SIGTERM") from None
    except SystemExit:
        # Lightning answers Ctrl-C by tearing down, ignoring SIGINT from then on and calling
        # sys.exit(1): give Ctrl-C back its usual meaning, and say what happened.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if recorder.interrupted:
            raise TrainingInterrupted(recorder.run.path, "SIGINT") from None
        raise


def test(
    trainer: L.Trainer, module: Classifier, data: ImageDataModule, plan: RunPlan
) -> dict[str, float]:
    """Test figures of the best weights on the test split (over every process), if asked."""
    cfg = plan.cfg
    if not cfg.evaluate_test or data.test_split is None:
        return {}
    best = RunDir(Path(trainer.strategy.broadcast(str(plan.run.path), src=0))).best
    if cfg.early_stopping.restore_best and best.exists():
        # Load a real copy of the best weights from disk: a state_dict held by reference
        # would have been overwritten by every later step (the seeds' bug).
        module.load_state_dict(load_checkpoint(best)["state_dict"])
    results = trainer.test(module, datamodule=data, verbose=False)
    return {k.replace("/", "_"): float(v) for k, v in (results[0] if results else {}).items()}


def final_metrics(
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


# --- helpers -------------------------------------------------------------------------------


# Model families whose training measured slower in channels_last on a CPU: vgg16 0.82x, while
# fastnet, resnet18 and resnext29_2x64d were 1.19-2.12x faster (BENCHMARKS.md, "training
# throughput per setting on CPU"; oneDNN, 2 cores).
CPU_CONTIGUOUS_MODELS = ("vgg",)


def auto_channels_last(spec: ModelSpec, trainer: L.Trainer) -> bool:
    """``trainer.channels_last=null``: a fixed rule of device and model, never a timing.

    On for CUDA and other accelerators (the NHWC layout tensor cores want) and for several
    processes (they must agree on the parameters' layout); on a CPU, on except for the VGG
    family. The layout changes the rounding of the convolutions, so deciding it by timing made
    a run's numbers depend on how busy the machine was; a rule makes the same config, seed and
    machine kind give the same metrics.csv, byte for byte.
    """
    if trainer.strategy.root_device.type != "cpu" or trainer.world_size > 1:
        return True
    return not spec.model.startswith(CPU_CONTIGUOUS_MODELS)


def _claim(run: RunDir, config_yaml: str, fresh: bool = False) -> RunLock | None:
    """Lock ``run`` and create its config.yaml exclusively; None when the run already exists.

    ``fresh``: the folder itself must be new (default names never reuse a folder). A lock held
    by a live training raises RunInUseError.
    """
    if fresh:
        try:
            run.path.mkdir(parents=True)
        except FileExistsError:
            return None
    lock = RunLock(run.path)
    lock.acquire()
    try:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        with run.config.open("x") as fh:
            fh.write(config_yaml)
    except FileExistsError:
        lock.release()
        return None
    except BaseException:
        lock.release()
        raise
    return lock


def _manifest(plan: RunPlan, data: ImageDataModule, git: dict[str, Any]) -> dict[str, Any]:
    """What a report needs to trust the run: code, data, seed, versions, device, times."""
    cfg = plan.cfg
    manifest = read_json(plan.run.manifest) if plan.resumed else {}
    if plan.resumed:
        manifest["previous_status"] = manifest.get("status")
    manifest.update(
        {
            "name": plan.run.name,
            "status": "running",
            "git": git,
            "data": {
                "source": cfg.data.source or "embedded:cifake-mini",
                "test_source": cfg.data.test_source,
                "fingerprint": data.fingerprint,
                "classes": list(data.classes),
                "sizes": data.splits.sizes() if data.splits else {},
            },
            "seed": cfg.seed,
            "packages": package_versions(),
            "device": device_description(),
            "precision": _precision(cfg.trainer),
            "channels_last": cfg.trainer.channels_last is not False,
        }
    )
    manifest.setdefault("started", now())
    if plan.resumed:
        manifest.setdefault("resumed", []).append(now())
    return manifest


def _seed(seed: int) -> None:
    """Seed Python, NumPy and torch (weights, dropout): the run's starting point."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def _loggers(cfg: C.TrainConfig, run: RunDir) -> list[Any]:
    """Optional Lightning loggers (CSV and MLflow are handled by the run itself)."""
    loggers: list[Any] = []
    if cfg.logging.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run.path), name="tensorboard", version=""))
    if cfg.logging.wandb and cfg.logging.wandb_mode != "disabled":
        loggers.extend(_wandb_logger(cfg, run))
    return loggers


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


def _as_obj(config: C.TrainConfig | DictConfig) -> C.TrainConfig:
    if isinstance(config, DictConfig):
        return C.to_object(config)
    if isinstance(config, C.TrainConfig):
        return C.to_object(OmegaConf.structured(config))  # validates types
    raise ConfigError(f"train() takes a TrainConfig or DictConfig, not {type(config).__name__}")


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Inside one call: hide Lightning's banner lines and a warning no user can act on."""
    banner = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = banner.level
    banner.setLevel(logging.WARNING)  # "GPU available", tips: they drown the progress lines
    try:
        with warnings.catch_warnings():
            # Emitted by Lightning's own internals on torch >= 2.10.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            yield
    finally:
        banner.setLevel(level)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _close_process_group() -> None:
    """Wait for every process, then close the group the run opened.

    Left open, the gloo group's threads are torn down during interpreter exit, in no fixed
    order with the rest of the process: a process could then abort with "terminate called
    without an active exception" after a successful run.
    """
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
