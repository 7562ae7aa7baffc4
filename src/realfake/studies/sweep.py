"""Sweeps: Optuna searches over config keys, each trial a full ``train()`` run.

``run_sweep`` composes the base config with each trial's values, trains with a pruning
callback, and records the trial in an Optuna study: SQLite at ``sweeps/<name>/study.db`` by
default, any SQLAlchemy URL (PostgreSQL for many machines) otherwise. Every worker running the
same command on the same storage shares the study; the fixed settings (the sweep file's and the
command line's overrides) are the study's, and a worker with other ones is refused.

The budget ``trials`` counts the study's trials that ended (complete, pruned or failed), each
once: a trial whose worker died (a process gone on this host, or no heartbeat for the grace
period) is marked failed and retried, and only its retry counts; a trial cut by Ctrl-C or
SIGTERM is marked interrupted, does not count, and is queued again with the same values; a
trial a worker started after the study had reached its total (two workers racing for the last
one) is marked ``surplus`` and does not count either. A worker returns when the study holds
``trials`` ended trials, waiting for (and if need be retrying) the trials other workers still
run; running the command again continues a study to its total.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import optuna
from omegaconf import OmegaConf
from sqlalchemy.exc import SQLAlchemyError

from realfake.atomic import check_writable_dir, write_text
from realfake.errors import ConfigError, RealfakeError, RunInUseError, TrainingInterrupted
from realfake.runs import RunDir, read_json, write_json
from realfake.runs.lock import RunLock
from realfake.runs.tracking import MlflowTracker
from realfake.studies.sweepfile import (
    PRUNERS,
    SAMPLERS,
    SweepSpec,
    check_choice,
    check_spec,
    load_sweep,
    override,
)
from realfake.studies.sweepstorage import (
    STORAGE_TIMEOUT_S,
    WORKER_KEY,
    Retry,
    fail_dead_trials,
    mask_secrets,
    open_storage,
    retried_numbers,
    retry_history,
    retry_of,
    storage_error,
    storage_kind,
    this_worker,
)
from realfake.train import compose, train

log = logging.getLogger(__name__)

DEFAULT_TRIALS = 10
HEARTBEAT_S = 10  # a running trial writes a heartbeat this often
# A trial without a heartbeat for this long is taken for dead; generous, because a busy CPU can
# starve the heartbeat thread for a few seconds.
GRACE_S = 60
MAX_RETRY = 2  # a trial whose worker died is retried at most this often
# The config keys that belong to one run, not to the recipe a best config reproduces.
RUN_KEYS = ("name", "runs_dir", "logging.parent_run_id")
# Config keys that change where a run is recorded, not what it computes: workers of one study
# may differ in them (one tracks to MLflow, another does not).
UNCOMPARED = ("name", "runs_dir", "logging")


@dataclass
class SweepResult:
    name: str
    out_dir: Path
    storage: str = field(repr=False)  # may hold a password: mask_secrets() before showing it
    direction: str
    metric: str
    counted: int  # ended trials that count towards the budget
    best_trial: int | None
    best_value: float | None
    files: dict[str, Path] = field(default_factory=dict)


class SweepInterrupted(RealfakeError):
    """A sweep stopped by Ctrl-C or SIGTERM; running the same command continues its study."""

    def __init__(self, study: str, signal_name: str, trial: int | None, retry: int | None):
        self.study = study
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
        self.trial = trial  # the trial cut short, if one was running
        self.retry = retry  # the trial queued to run its values again
        if trial is None:
            what = "between trials"
        elif retry is None:
            what = f"trial {trial} was cut short (it does not count)"
        else:
            what = f"trial {trial} was cut short and its values will run again as trial {retry}"
        super().__init__(f"sweep {study} stopped by {signal_name}: {what}")


class PruningCallback(L.Callback):
    """Reports the monitored metric after every epoch; stops the fit when Optuna prunes.

    Stopping goes through ``trainer.should_stop`` so the run ends as a finished run with its
    checkpoints; the objective then raises ``optuna.TrialPruned``. A NaN metric stops the
    training too (it cannot recover), and the trial fails.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None
        self.diverged_at: int | None = None
        self.started = False  # the first training step came
        self.epochs_done = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs_done = trainer.current_epoch + 1
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1  # epochs done: Hyperband's resource
        value = float(value)
        if math.isnan(value):
            self.diverged_at, trainer.should_stop = epoch, True
            return
        self.trial.report(value, epoch)
        # After the last epoch there is nothing left to save: the trial completes (pruning it
        # then would only drop a fully trained result; the benchmark saw 3 of 12 trials so).
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if not last and self.trial.should_prune():
            self.pruned_at, trainer.should_stop = epoch, True


class _StopSignals:
    """Ctrl-C and SIGTERM while a sweep runs: remembered always, raised only where it is safe.

    Inside ``interruptible()`` (composing and training a trial, waiting for other workers) the
    signal raises KeyboardInterrupt at once, which Lightning turns into an orderly stop of the
    fit. Elsewhere (Optuna's bookkeeping between trials: creating, telling, queueing) it is
    only remembered, so that no such write is cut halfway; the sweep stops at its next check.
    While Lightning fits, SIGTERM is Lightning's: it stops after the current batch, and this
    handler only notes it. Outside the main thread signals cannot be handled: nothing is
    installed.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._interruptible = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.received = self.received or signal.Signals(signum).name
        if signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) != self._handle:
            return  # Lightning's handler called this one: it ends the fit after the batch
        if self._interruptible:
            raise KeyboardInterrupt(self.received)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A section that a signal may cut short (KeyboardInterrupt)."""
        if self.received:
            raise KeyboardInterrupt(self.received)
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
            # An interrupted fit hands Ctrl-C back to Python's default handler: take it again.
            if self._previous and signal.getsignal(signal.SIGINT) != self._handle:
                signal.signal(signal.SIGINT, self._handle)


def sweep_dir(name: str, out_root: str | Path = "sweeps") -> Path:
    return Path(out_root) / name


def default_storage(out_dir: Path) -> str:
    return f"sqlite:///{out_dir / 'study.db'}"


def run_sweep(
    sweep: SweepSpec | str | Path,
    trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
    out_root: str | Path = "sweeps",
    sampler: str | None = None,
    pruner: str | None = None,
    seed: int | None = None,
    heartbeat_s: int = HEARTBEAT_S,
    grace_s: int | None = None,
    storage_timeout_s: float = STORAGE_TIMEOUT_S,
) -> SweepResult:
    """Run (or continue) a sweep until its study holds ``trials`` ended trials.

    Ctrl-C or SIGTERM ends the running trial as interrupted, queues its values again and
    raises SweepInterrupted (exit code 130 or 143); the same call continues the study.
    """
    if storage is not None:
        storage_kind(storage)  # a kind Optuna cannot use stops before anything is written
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    if sampler is not None:
        spec.sampler = check_choice(sampler, SAMPLERS, "run_sweep", "sampler")
    if pruner is not None:
        spec.pruner = check_choice(pruner, PRUNERS, "run_sweep", "pruner")
    name = study_name or spec.name
    if not name or Path(name).name != name or name in (".", ".."):
        raise ConfigError(f"sweep name {name!r} must be a folder name (no '/')")
    base_cfg = check_spec(spec, overrides)  # every key and type, before any trial
    total = trials or spec.trials or (spec.grid_size() if spec.sampler == "grid" else None)
    total = total or DEFAULT_TRIALS
    if spec.sampler == "grid" and total > spec.grid_size():
        log.warning(
            "the grid has %d points: running that many trials, not %d", spec.grid_size(), total
        )
        total = spec.grid_size()
    out_dir = check_writable_dir(sweep_dir(name, out_root), "sweep folder")
    url = storage or default_storage(out_dir)
    grace_s = grace_s or max(GRACE_S, 3 * heartbeat_s)
    fixed = [mask_secrets(o) for o in (*spec.overrides, *overrides)]
    try:
        study, store = _open_study(
            spec, name, url, seed, heartbeat_s, grace_s, storage_timeout_s, fixed
        )
        if not study.trials and (out_dir / "runs").is_dir() and any((out_dir / "runs").iterdir()):
            raise ConfigError(
                f"{out_dir / 'runs'} holds runs of another study, and study {name!r} in "
                f"{mask_secrets(url)} is new; remove the folder or choose another --study"
            )
        parent = _parent_run(study, base_cfg, name, spec)
        trial_overrides = [*spec.overrides, *overrides]
        if parent is not None and parent.run_id:
            trial_overrides.append(f"logging.parent_run_id={parent.run_id}")
        try:
            _run_trials(study, store, spec, trial_overrides, out_dir, total, heartbeat_s, grace_s)
        finally:
            if parent is not None:
                _finish_parent(parent, study, spec)
        files = write_results(study, out_dir, spec)
        best = best_trial(study)
        counted = count_trials(study.get_trials(deepcopy=False))[0]
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as exc:
        raise storage_error(exc, url, storage_timeout_s) from None
    return SweepResult(
        name=name,
        out_dir=out_dir,
        storage=url,
        direction=spec.direction,
        metric=spec.metric,
        counted=counted,
        best_trial=best.number if best else None,
        best_value=best.value if best else None,
        files=files,
    )


def _run_trials(
    study: optuna.Study,
    store: optuna.storages.BaseStorage,
    spec: SweepSpec,
    overrides: list[str],
    out_dir: Path,
    total: int,
    heartbeat_s: int,
    grace_s: int,
) -> None:
    """The search, with Ctrl-C and SIGTERM turned into SweepInterrupted after the trial."""
    with _StopSignals() as signals:
        objective = _Objective(spec, overrides, out_dir / "runs", total, signals)
        try:
            _search(study, store, objective, signals, total, heartbeat_s, grace_s)
        except KeyboardInterrupt:  # while waiting for other workers: no trial of ours runs
            signals.received = signals.received or "SIGINT"
        if signals.received:
            retry = None
            if objective.interrupted is not None:
                retry = _queue_again(study, objective.interrupted)
            write_trials_csv(study, out_dir / "trials.csv")
            raise SweepInterrupted(study.study_name, signals.received, objective.interrupted, retry)


def _search(
    study: optuna.Study,
    store: optuna.storages.BaseStorage,
    objective: _Objective,
    signals: _StopSignals,
    total: int,
    heartbeat_s: int,
    grace_s: int,
) -> None:
    """Run trials until the study holds ``total`` ended ones, or a signal came."""
    waiting_logged = False
    while not signals.received:
        for trial, _ in fail_dead_trials(study, store, grace_s, Retry(MAX_RETRY)):
            _close_run(objective.runs_dir / f"trial-{trial.number}", "its worker died")
        _fail_stale(study)
        all_trials = study.get_trials(deepcopy=False)
        done, active = count_trials(all_trials)
        if done >= total or _target_reached(study, objective.spec):
            return
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in all_trials)
        if done + active >= total and not waiting:  # the rest runs elsewhere: wait for it
            if not waiting_logged:
                log.info("waiting for %d trial(s) running elsewhere", active)
                waiting_logged = True
            with signals.interruptible():
                time.sleep(heartbeat_s)
            continue
        study.optimize(
            objective,
            n_trials=1,
            gc_after_trial=True,
            callbacks=[lambda s, t: write_trials_csv(s, objective.runs_dir.parent / "trials.csv")],
        )


class _Objective:
    """One trial: compose, train with pruning, return the best per-epoch metric."""

    def __init__(
        self,
        spec: SweepSpec,
        overrides: list[str],
        runs_dir: Path,
        total: int,
        signals: _StopSignals,
    ) -> None:
        self.spec = spec
        self.overrides = overrides
        self.runs_dir = runs_dir
        self.total = total
        self.signals = signals
        self.interrupted: int | None = None  # the trial a signal cut short

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_KEY, this_worker())
        frozen = trial.study.get_trials(deepcopy=False)
        if self.signals.received:  # it came while Optuna was creating this trial
            return self._interrupted(trial, self.signals.received, None)
        done, active = count_trials(frozen, trial.number)
        if done + active >= self.total:
            # Another worker took the last trial of the budget at the same moment.
            trial.set_user_attr("surplus", True)
            return self._failed(trial, f"surplus: the study had its {self.total} trials already")
        values = {key: p.suggest(trial) for key, p in self.spec.params.items()}
        trial.set_user_attr("values", values)
        this = next((t for t in frozen if t.number == trial.number), None)
        again = retry_history(this)[-1:] if this is not None else []
        log.info(
            "trial %d/%d (#%d%s): %s",
            done + active + 1,
            self.total,
            trial.number,
            f", again the values of #{again[0]}" if again else "",
            ", ".join(f"{k}={_short(v)}" for k, v in values.items()),
        )
        name = f"trial-{trial.number}"
        layers = [
            *self.overrides,
            *(override(k, v) for k, v in values.items()),
            f"runs_dir={self.runs_dir}",
            f"name={name}",
        ]
        pruning = PruningCallback(trial, self.spec.metric)
        try:
            with self.signals.interruptible():
                try:
                    cfg = compose(layers)
                except ConfigError as exc:
                    return self._failed(trial, f"invalid combination: {exc}")
                result = train(cfg, callbacks=[pruning])
        except TrainingInterrupted as exc:
            return self._interrupted(trial, self.signals.received or exc.signal_name, pruning)
        except KeyboardInterrupt:
            return self._interrupted(trial, self.signals.received or "SIGINT", pruning)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # NaN, out of memory, a bad combination: this trial only
            if self.signals.received:  # Ctrl-C also reached the data loader's processes, say
                return self._interrupted(trial, self.signals.received, pruning)
            return self._failed(trial, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        saved = OmegaConf.to_container(OmegaConf.load(result.run_dir / "config.yaml"))
        trial.set_user_attr("run_dir", str(result.run_dir))
        trial.set_user_attr("config", saved)
        trial.set_user_attr("epochs", len(result.history))
        trial.set_user_attr("metrics", {k: _json_float(v) for k, v in result.metrics.items()})
        if pruning.diverged_at is not None:
            return self._failed(
                trial, f"{self.spec.metric} became NaN at epoch {pruning.diverged_at}"
            )
        if pruning.pruned_at is not None:
            trial.set_user_attr("pruned_at_epoch", pruning.pruned_at)
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        value = best_of_history(result.history, self.spec.metric, self.spec.direction)
        if value is None:
            return self._failed(trial, f"{self.spec.metric} was NaN or missing in every epoch")
        return value

    @staticmethod
    def _failed(trial: optuna.Trial, reason: str) -> float:
        """Record why; a NaN return is Optuna's way to end a trial as failed."""
        reason = mask_secrets(reason)
        trial.set_user_attr("fail_reason", reason)
        log.warning("trial %d failed: %s", trial.number, reason)
        return float("nan")

    def _interrupted(
        self, trial: optuna.Trial, signal_name: str, pruning: PruningCallback | None
    ) -> float:
        """End the trial as interrupted (failed, not counted) and mark its run folder so."""
        if pruning is None or not pruning.started:
            when = "before training started"
        else:
            when = f"in epoch {pruning.epochs_done + 1}"
        reason = f"interrupted by {signal_name} {when}"
        trial.set_user_attr("interrupted", True)
        trial.set_user_attr("fail_reason", reason)
        self.interrupted = trial.number
        _close_run(self.runs_dir / f"trial-{trial.number}", reason)
        log.warning("trial %d %s; it does not count", trial.number, reason)
        return float("nan")


def _queue_again(study: optuna.Study, number: int) -> int | None:
    """Queue the values of interrupted trial ``number`` again; the new trial's number."""
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if not trial.params:  # cut before its values were drawn: a new trial draws its own
        return None
    return Retry()(study, trial)  # interruptions are no fault of the values: no limit


def _close_run(path: Path, reason: str) -> None:
    """Mark a trial's run folder as interrupted (its manifest) and free its lock.

    The lock is taken through RunLock, which takes over the lock of a dead process; a run that
    a live process still holds (on another host, say) is left alone.
    """
    run = RunDir(path)
    if not path.is_dir():
        return
    lock = RunLock(path)
    if _holds_lock(lock):  # cut between taking its lock and handing it to the training
        lock.held = True
        lock.release()
    try:
        lock.acquire()
    except RunInUseError as exc:
        log.warning("%s is left as it is: %s", path, exc)
        return
    try:
        manifest = read_json(run.manifest)
        if manifest.get("status") in (None, "running"):
            manifest.update({"name": run.name, "status": "interrupted", "error": reason})
            manifest.setdefault("ended", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            write_json(run.manifest, manifest)
    except RealfakeError as exc:  # a damaged manifest: the trial's end matters more than it
        log.warning("%s: could not mark it interrupted: %s", path, exc)
    finally:
        lock.release()


def _holds_lock(lock: RunLock) -> bool:
    """Whether this very process wrote ``lock``'s file."""
    try:
        return json.loads(lock.path.read_text()).get("pid") == os.getpid()
    except (OSError, ValueError):
        return False


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def best_of_history(history: list[dict[str, float]], metric: str, direction: str) -> float | None:
    """The best per-epoch value of ``val/loss`` or ``val/acc`` in a run's history."""
    column = metric.replace("/", "_")
    values = [r[column] for r in history if column in r and not math.isnan(r[column])]
    if not values:
        return None
    return min(values) if direction == "minimize" else max(values)


def count_trials(
    trials: Sequence[optuna.trial.FrozenTrial], below: int | None = None
) -> tuple[int, int]:
    """(ended, running or waiting) trials that count towards the budget (module docstring);
    with ``below``, only those numbered below it."""
    retried = retried_numbers(trials)
    done = active = 0
    for t in trials:
        if below is not None and t.number >= below:
            continue
        if t.number in retried or t.user_attrs.get("surplus") or t.user_attrs.get("interrupted"):
            continue
        if t.state.is_finished():
            done += 1
        else:
            active += 1
    return done, active


def _open_study(
    spec: SweepSpec,
    name: str,
    url: str,
    seed: int | None,
    heartbeat_s: int,
    grace_s: int,
    timeout_s: float,
    fixed: list[str],
) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """The study (created or continued) and its storage; refused if the search differs."""
    storage = open_storage(url, timeout_s, heartbeat_s, grace_s, MAX_RETRY)
    shown = mask_secrets(url)
    # The sampler's seed: --seed for a new study; for one continued, derived from it and the
    # trials already there, or a restarted worker would draw its first points again.
    before = _trials_in(storage, name)
    sampler_seed = seed
    if seed is not None and before:
        sampler_seed = int(np.random.SeedSequence([seed, before]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=make_sampler(spec, sampler_seed),
                pruner=make_pruner(spec),
                direction=spec.direction,
                load_if_exists=True,
            )
        except ValueError as exc:
            raise ConfigError(f"study {name!r} in {shown}: {exc}") from None
        if study.metric_names is None:  # the dashboard's name for the value
            study.set_metric_names([spec.metric])
    fingerprint = spec.fingerprint()
    known = study.user_attrs.get("fingerprint")
    if known is None:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("metric", spec.metric)
    elif known != fingerprint:
        raise ConfigError(
            f"study {name!r} in {shown} was started with another search space, metric or "
            "direction; choose another --study (or --storage) for this sweep file"
        )
    _check_fixed(study, fixed, spec, shown)
    return study, storage


def _trials_in(storage: optuna.storages.BaseStorage, name: str) -> int:
    try:
        return storage.get_n_trials(storage.get_study_id_from_name(name))
    except KeyError:  # a new study
        return 0


def _check_fixed(study: optuna.Study, fixed: list[str], spec: SweepSpec, shown: str) -> None:
    """Refuse to continue a study with other fixed settings, naming each difference."""
    known = study.user_attrs.get("fixed_overrides")
    if known is None:
        study.set_user_attr("fixed_overrides", fixed)
        return
    if list(known) == fixed:
        return
    differences = fixed_differences(list(known), fixed, set(spec.params))
    if differences:
        raise ConfigError(
            f"study {study.study_name!r} in {shown} was run with other fixed settings: "
            f"{'; '.join(differences)}; give the study's own overrides ({' '.join(known)}) "
            "or choose another --study"
        )


def fixed_differences(before: list[str], after: list[str], searched: set[str]) -> list[str]:
    """``KEY: OLD -> NEW`` for each config key two override lists set differently.

    Both lists are composed here, so that spelling (``2`` or ``2.0``) and data folders that
    differ between machines do not count; searched keys and where runs are recorded do not
    count either.
    """
    try:
        old, new = _flat(compose(before)), _flat(compose(after))
    except ConfigError:  # the study's settings no longer compose (a file gone): as written
        old, new = _as_written(before), _as_written(after)
    missing = "(not set)"
    out = []
    for key in sorted(old.keys() | new.keys()):
        top = key.split(".")[0]
        if top in UNCOMPARED or key in UNCOMPARED or _under(key, searched):
            continue
        a, b = old.get(key, missing), new.get(key, missing)
        if a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def _under(key: str, prefixes: set[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _flat(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """A config as ``{dotted.key: value}`` (lists whole)."""
    data = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _as_written(overrides: list[str]) -> dict[str, Any]:
    return dict(o.partition("=")[::2] for o in overrides)


def make_sampler(spec: SweepSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, with the constant liar), GP-based Bayesian optimisation, random, grid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec.sampler == "tpe":
            # The constant liar only acts on trials that are running while another one is
            # sampled, i.e. when several workers share a study; alone it changes nothing.
            return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed)
        if spec.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if spec.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if spec.sampler == "grid":
            return optuna.samplers.GridSampler(spec.grid_space(), seed=seed)
    raise ConfigError(f"sampler {spec.sampler!r}; expected one of {', '.join(SAMPLERS)}")


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        # Judge a trial only once a few trials have finished and after its first epoch.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.min_resource, reduction_factor=spec.reduction_factor
        )
    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner {spec.pruner!r}; expected one of {', '.join(PRUNERS)}")


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _target_reached(study: optuna.Study, spec: SweepSpec) -> bool:
    best = best_trial(study)
    if spec.target is None or best is None or best.value is None:
        return False
    if spec.direction == "minimize":
        return best.value <= spec.target
    return best.value >= spec.target


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return None
    pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    return pick(done, key=lambda t: t.value)


# --- MLflow: one parent run per sweep, trials nested ------------------------------------------


def _parent_run(study: optuna.Study, cfg: Any, name: str, spec: SweepSpec) -> MlflowTracker | None:
    if not cfg.logging.mlflow:
        return None
    tracker = MlflowTracker(cfg.logging.tracking_uri, cfg.logging.experiment_name)
    # The study's attributes show on the dashboard: the tracking URI without its password.
    key = f"mlflow_parent:{mask_secrets(tracker.tracking_uri)}"
    known = study.user_attrs.get(key)  # a resumed sweep (or another worker) nests under it too
    params = {
        "sweep.metric": spec.metric,
        "sweep.direction": spec.direction,
        "sweep.sampler": spec.sampler,
    }
    params.update({f"sweep.param.{k}": p.describe() for k, p in spec.params.items()})
    tags = {"realfake.sweep": name, "realfake.sweep_file": spec.source}
    run_id = tracker.start(f"sweep-{name}", {} if known else params, tags, run_id=known)
    if run_id and not known:
        study.set_user_attr(key, run_id)
    return tracker


def _finish_parent(tracker: MlflowTracker, study: optuna.Study, spec: SweepSpec) -> None:
    try:
        best = best_trial(study)
        metrics = {"trials": float(count_trials(study.get_trials(deepcopy=False))[0])}
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError):
        best, metrics = None, {}  # the storage failed: that error is the one to report
    if best is not None and best.value is not None:
        metrics.update(
            {f"best_{spec.metric.replace('/', '_')}": best.value, "best_trial": best.number}
        )
    tracker.log_metrics(metrics)
    tracker.finish()


# --- results ---------------------------------------------------------------------------------


def leaderboard(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial but surplus ones, best first: completed by value, pruned, running, failed."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4, "INTERRUPTED": 5}
    rows = []
    for t in trials:
        if t.user_attrs.get("surplus"):
            continue
        state = t.state.name
        if t.user_attrs.get("interrupted"):
            state = "INTERRUPTED"
        elif t.number in retried:
            state = "FAIL (retried)"
        intermediate = list(t.intermediate_values.values())
        rows.append(
            {
                "trial": t.number,
                "state": state,
                "value": t.value if t.value is not None and not math.isnan(t.value) else None,
                "last_epoch_value": intermediate[-1] if intermediate else None,
                "epochs": t.user_attrs.get("epochs", len(intermediate) or None),
                "duration_s": t.duration.total_seconds() if t.duration else None,
                **(t.user_attrs.get("values") or _values(t.params)),
                "retry_of": retry_of(t),
                "run_dir": t.user_attrs.get("run_dir"),
                "reason": t.user_attrs.get("fail_reason")
                or (
                    f"pruned after epoch {t.user_attrs['pruned_at_epoch']}"
                    if "pruned_at_epoch" in t.user_attrs
                    else None
                ),
            }
        )

    def rank(row: dict[str, Any]) -> tuple[int, float]:
        value = row["value"] if row["value"] is not None else row["last_epoch_value"]
        return order.get(
            row["state"].split()[0], 6
        ), sign * value if value is not None else math.inf

    return sorted(rows, key=rank)


def _values(params: dict[str, Any]) -> dict[str, Any]:
    """A queued trial's values: its parameters but the quantiles that stand for normal ones."""
    return {k: v for k, v in params.items() if "~" not in k}


def write_trials_csv(study: optuna.Study, path: Path, spec: SweepSpec | None = None) -> Path:
    """The leaderboard as CSV; a column of whole numbers stays whole where some rows lack it."""
    import pandas as pd

    rows = leaderboard(study)
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        given = [r.get(column) for r in rows if r.get(column) is not None]
        if given and all(isinstance(v, int) and not isinstance(v, bool) for v in given):
            frame[column] = pd.array([r.get(column) for r in rows], dtype="Int64")
    return write_text(path, frame.to_csv(index=False))


def write_results(study: optuna.Study, out_dir: Path, spec: SweepSpec) -> dict[str, Path]:
    """trials.csv, best.yaml (the best trial's config as an experiment) and the plots."""
    files = {"trials": write_trials_csv(study, out_dir / "trials.csv")}
    best = best_trial(study)
    if best is not None and "config" in best.user_attrs:
        files["best_config"] = write_best_config(study, best, out_dir / "best.yaml", spec)
    from realfake.studies.sweepplots import write_plots

    files.update(write_plots(study, out_dir / "plots"))
    return files


def write_best_config(
    study: optuna.Study, best: optuna.trial.FrozenTrial, path: Path, spec: SweepSpec
) -> Path:
    """The best trial's resolved config, run-specific keys removed, as an experiment YAML."""
    data = dict(best.user_attrs["config"])
    for key in RUN_KEYS:
        parent, _, leaf = key.rpartition(".")
        node = data.get(parent, {}) if parent else data
        node.pop(leaf, None)
    header = (
        f"# Best trial {best.number} of sweep {study.study_name}: {spec.metric} {best.value:.6g}"
        f" ({best.user_attrs.get('run_dir', 'run elsewhere')}).\n"
        f"# Reproduce it: realfake train experiment={path}\n"
    )
    write_text(path, header + OmegaConf.to_yaml(OmegaConf.create(data)))
    compose([f"experiment={path}"])  # what was written loads as an experiment
    return path


def _json_float(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def open_study(
    name: str,
    storage: str | None = None,
    out_root: str | Path = "sweeps",
    timeout_s: float = STORAGE_TIMEOUT_S,
) -> optuna.Study:
    """An existing sweep's study, for ``show``."""
    out_dir = sweep_dir(name, out_root)
    if storage is None:
        db = out_dir / "study.db"
        if not db.is_file():
            raise ConfigError(
                f"no sweep named {name} (looked for {db}); give --storage for another store"
            )
        storage = default_storage(out_dir)
    store = open_storage(storage, timeout_s)
    try:
        return optuna.load_study(study_name=name, storage=store)
    except KeyError:
        raise ConfigError(f"no study named {name!r} in {mask_secrets(storage)}") from None
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as exc:
        raise storage_error(exc, storage, timeout_s) from None


def show_sweep(
    name: str,
    storage: str | None = None,
    out_root: str | Path = "sweeps",
    timeout_s: float = STORAGE_TIMEOUT_S,
) -> tuple[str, str, list[dict[str, Any]]]:
    """(study name, direction, leaderboard) of an existing sweep."""
    study = open_study(name, storage, out_root, timeout_s)
    try:
        return study.study_name, study.direction.name.lower(), leaderboard(study)
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as exc:
        url = storage or default_storage(sweep_dir(name, out_root))
        raise storage_error(exc, url, timeout_s) from None
