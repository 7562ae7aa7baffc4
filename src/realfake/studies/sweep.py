"""Sweeps: Optuna searches over config keys, each trial a full ``train()`` run.

``run_sweep`` composes the base config with each trial's values, trains with a pruning
callback, and records the trial in an Optuna study: SQLite at ``sweeps/<name>/study.db`` by
default, any SQLAlchemy URL (PostgreSQL for many machines) otherwise. Every worker running the
same command on the same storage shares the study.

The budget ``trials`` counts the study's trials that ended (complete, pruned or failed), each
once: a trial whose worker died (no heartbeat for the grace period) is marked failed and
retried, and only its retry counts; a trial cut by Ctrl-C does not count; a trial a worker
started after the study had reached its total (two workers racing for the last one) is marked
``surplus`` and does not count either. A worker returns when the study holds ``trials`` ended
trials, waiting for (and if need be retrying) the trials other workers still run; running the
command again continues a study to its total.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from omegaconf import OmegaConf

from realfake.atomic import check_writable_dir, write_text
from realfake.errors import ConfigError, TrainingInterrupted
from realfake.studies.sweepfile import SweepSpec, check_spec, load_sweep, override
from realfake.train import compose, train
from realfake.train.tracking import MlflowTracker

log = logging.getLogger(__name__)

DEFAULT_TRIALS = 10
HEARTBEAT_S = 10  # a running trial writes a heartbeat this often
# A trial without a heartbeat for this long is taken for dead; generous, because a busy CPU can
# starve the heartbeat thread for a few seconds.
GRACE_S = 60
MAX_RETRY = 2  # a trial whose worker died is retried at most this often
# The config keys that belong to one run, not to the recipe a best config reproduces.
RUN_KEYS = ("name", "runs_dir", "logging.parent_run_id")


@dataclass
class SweepResult:
    name: str
    out_dir: Path
    storage: str
    direction: str
    metric: str
    counted: int  # ended trials that count towards the budget
    best_trial: int | None
    best_value: float | None
    files: dict[str, Path] = field(default_factory=dict)


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

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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
) -> SweepResult:
    """Run (or continue) a sweep until its study holds ``trials`` ended trials."""
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    if sampler is not None:
        spec.sampler = sampler
    if pruner is not None:
        spec.pruner = pruner
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
    study = _open_study(
        spec, name, url, seed, heartbeat_s, grace_s or max(GRACE_S, 3 * heartbeat_s)
    )
    if not study.trials and (out_dir / "runs").is_dir() and any((out_dir / "runs").iterdir()):
        raise ConfigError(
            f"{out_dir / 'runs'} holds runs of another study, and study {name!r} in {url} is new; "
            "remove the folder or choose another --study"
        )
    parent = _parent_run(study, base_cfg, name, spec)
    trial_overrides = [*spec.overrides, *overrides]
    if parent is not None and parent.run_id:
        trial_overrides.append(f"logging.parent_run_id={parent.run_id}")
    objective = _Objective(spec, trial_overrides, out_dir / "runs", total)
    waiting_logged = False
    try:
        while True:
            _fail_stale(study)
            all_trials = study.get_trials(deepcopy=False)
            done, active = count_trials(all_trials)
            if done >= total or _target_reached(study, spec):
                break
            waiting = any(t.state == optuna.trial.TrialState.WAITING for t in all_trials)
            if done + active >= total and not waiting:  # the rest runs elsewhere: wait for it
                if not waiting_logged:
                    log.info("waiting for %d trial(s) running elsewhere", active)
                    waiting_logged = True
                time.sleep(heartbeat_s)
                continue
            study.optimize(
                objective,
                n_trials=1,
                gc_after_trial=True,
                callbacks=[lambda s, t: write_trials_csv(s, out_dir / "trials.csv", spec)],
            )
    finally:
        if parent is not None:
            _finish_parent(parent, study, spec)
    files = write_results(study, out_dir, spec)
    best = best_trial(study)
    return SweepResult(
        name=name,
        out_dir=out_dir,
        storage=url,
        direction=spec.direction,
        metric=spec.metric,
        counted=count_trials(study.get_trials(deepcopy=False))[0],
        best_trial=best.number if best else None,
        best_value=best.value if best else None,
        files=files,
    )


class _Objective:
    """One trial: compose, train with pruning, return the best per-epoch metric."""

    def __init__(self, spec: SweepSpec, overrides: list[str], runs_dir: Path, total: int) -> None:
        self.spec = spec
        self.overrides = overrides
        self.runs_dir = runs_dir
        self.total = total

    def __call__(self, trial: optuna.Trial) -> float:
        if sum(count_trials(trial.study.get_trials(deepcopy=False), trial.number)) >= self.total:
            # Another worker took the last trial of the budget at the same moment.
            trial.set_user_attr("surplus", True)
            return self._failed(trial, f"surplus: the study had its {self.total} trials already")
        values = {key: p.suggest(trial) for key, p in self.spec.params.items()}
        trial.set_user_attr("values", values)
        name = f"trial-{trial.number}"
        layers = [
            *self.overrides,
            *(override(k, v) for k, v in values.items()),
            f"runs_dir={self.runs_dir}",
            f"name={name}",
        ]
        try:
            cfg = compose(layers)
        except ConfigError as exc:
            return self._failed(trial, f"invalid combination: {exc}")
        pruning = PruningCallback(trial, self.spec.metric)
        try:
            result = train(cfg, callbacks=[pruning])
        except TrainingInterrupted:
            trial.set_user_attr("interrupted", True)
            raise
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # NaN, out of memory, a bad combination: this trial only
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
        trial.set_user_attr("fail_reason", reason)
        log.warning("trial %d failed: %s", trial.number, reason)
        return float("nan")


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
    retried = {retry_of(t) for t in trials} - {None}
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


def retry_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the trial this one retries (its worker died), or None."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return Retry.retried_trial_number(trial)


def _open_study(
    spec: SweepSpec, name: str, url: str, seed: int | None, heartbeat_s: int, grace_s: int
) -> optuna.Study:
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = _with_driver(url)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = None
        for attempt in range(3):
            try:
                storage = RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY),
                )
                break
            except Exception as exc:  # a bad URL, a server that does not answer, no driver
                text = " ".join(str(exc).split())
                # Workers started together on a new database race to create Optuna's tables;
                # the loser finds them made a moment later.
                if "already exists" in text and attempt < 2:
                    time.sleep(1.0 + attempt)
                    continue
                raise ConfigError(f"cannot open the sweep storage {_shown(url)}: {text}") from None
        try:
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=make_sampler(spec, seed),
                pruner=make_pruner(spec),
                direction=spec.direction,
                load_if_exists=True,
            )
        except ValueError as exc:
            raise ConfigError(f"study {name!r} in {_shown(url)}: {exc}") from None
    fingerprint = spec.fingerprint()
    known = study.user_attrs.get("fingerprint")
    if known is None:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("metric", spec.metric)
    elif known != fingerprint:
        raise ConfigError(
            f"study {name!r} in {_shown(url)} was started with another search space, metric or "
            "direction; choose another --study (or --storage) for this sweep file"
        )
    return study


def _shown(url: str) -> str:
    """The URL for a message, its password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: nothing to hide
        return url


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg
    (3), the dev extra installs psycopg2; an explicit ``postgresql+DRIVER://`` is kept."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


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
        return optuna.samplers.GridSampler(spec.grid_space(), seed=seed)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        # Judge a trial only once a few trials have finished and after its first epoch.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.min_resource, reduction_factor=spec.reduction_factor
        )
    return optuna.pruners.NopPruner()


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
    key = f"mlflow_parent:{tracker.tracking_uri}"
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
    best = best_trial(study)
    metrics = {"trials": float(count_trials(study.get_trials(deepcopy=False))[0])}
    if best is not None and best.value is not None:
        metrics.update(
            {f"best_{spec.metric.replace('/', '_')}": best.value, "best_trial": best.number}
        )
    tracker.log_metrics(metrics)
    tracker.finish()


# --- results ---------------------------------------------------------------------------------


def leaderboard(study: optuna.Study) -> list[dict[str, Any]]:
    """Every counted trial, best first: completed by value, then pruned, then failed."""
    trials = study.get_trials(deepcopy=False)
    retried = {retry_of(t) for t in trials} - {None}
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}
    rows = []
    for t in trials:
        if t.user_attrs.get("surplus"):
            continue
        state = t.state.name
        if t.number in retried:
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
                **{k: v for k, v in (t.user_attrs.get("values") or {}).items()},
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
            row["state"].split()[0], 5
        ), sign * value if value is not None else math.inf

    return sorted(rows, key=rank)


def write_trials_csv(study: optuna.Study, path: Path, spec: SweepSpec | None = None) -> Path:
    import pandas as pd

    rows = leaderboard(study)
    return write_text(path, pd.DataFrame(rows).to_csv(index=False))


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
    name: str, storage: str | None = None, out_root: str | Path = "sweeps"
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
    try:
        return optuna.load_study(study_name=name, storage=_with_driver(storage))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in {storage}") from None
    except Exception as exc:
        raise ConfigError(f"cannot open {storage}: {' '.join(str(exc).split())}") from None
