"""Studies: named sets of arms (override lists) trained, evaluated and compared in one table.

A study file (``configs/study/NAME.yaml``) holds ``description``, ``common`` (overrides for
every arm, e.g. the epoch budget) and ``arms`` (name -> overrides). Overrides apply in the
order common, arm, then the caller's, so ``trainer.max_epochs=20`` on the command line raises
the budget of every arm.

A study folder ``<out_root>/<study>-<time>/`` holds ``study.json`` (the plan: arms, overrides,
seeds and every run's composed config; then one entry per session with its wall time), the
runs under ``runs/`` and the table. ``run_study(..., resume=DIR)`` or ``continue_study(DIR)``
continues an interrupted study: finished runs are reused, a run stopped mid-training is resumed
from its last checkpoint, the rest are trained; a different plan is refused, naming what differs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from realfake.errors import CheckpointError, ConfigError, TrainingInterrupted
from realfake.runs import RunDir, read_json, write_json
from realfake.studies.comparison import Comparison, collect, tabulate
from realfake.studies.cross_source import cross_source_table, write_cross_source
from realfake.train import compose, train
from realfake.train.config import config_dir, flatten, to_dict
from realfake.train.provenance import now

PLAN_FILE = "study.json"
# Config keys that say where a run is, not what it trains: a study may move between sessions.
UNPLANNED_KEYS = ("runs_dir",)
# What a session does with a run in each state (run_state), as study.json records it.
ACTIONS = {"finished": "reused", "started": "resumed", "new": "trained"}


@dataclass
class Study:
    name: str
    arms: dict[str, list[str]]
    common: list[str] = field(default_factory=list)
    description: str = ""
    # Test sources: name -> data overrides (``[data=faces_256]``); every run is also scored on
    # each one's test split, in a train × test table (realfake.studies.cross_source).
    test_on: dict[str, list[str]] = field(default_factory=dict)


def available_studies() -> list[str]:
    """Names of the shipped study files."""
    return sorted(p.stem for p in (config_dir() / "study").glob("*.yaml"))


def load_study(name_or_path: str | Path) -> Study:
    """A shipped study by name, or a study YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / "study" / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"no study named {name_or_path} (looked for {path}); available: "
            f"{', '.join(available_studies()) or 'none'}"
        )
    raw = OmegaConf.load(path)
    arms = raw.get("arms") if isinstance(raw, DictConfig) else None
    if not isinstance(arms, DictConfig) or not arms:
        raise ConfigError(f"{path}: expected a mapping 'arms: {{name: [KEY=VALUE, ...]}}'")
    common = raw.get("common") or []
    test_on = raw.get("test_on") or {}
    if not isinstance(test_on, (DictConfig, dict)):
        raise ConfigError(f"{path}: expected a mapping 'test_on: {{name: [KEY=VALUE, ...]}}'")
    for where, overrides in [("common", common), *arms.items(), *test_on.items()]:
        if not isinstance(overrides, (ListConfig, list)) or not all(
            isinstance(o, str) and "=" in o for o in overrides
        ):
            raise ConfigError(f"{path}: '{where}' must be a list of KEY=VALUE strings")
    return Study(
        name=path.stem,
        arms={str(k): [str(o) for o in v] for k, v in arms.items()},
        common=[str(o) for o in common],
        description=str(raw.get("description") or ""),
        test_on={str(k): [str(o) for o in v] for k, v in test_on.items()},
    )


def arm_configs(
    study: Study, seeds: int = 1, overrides: Sequence[str] = (), runs_dir: Path | None = None
) -> list[tuple[str, DictConfig]]:
    """(arm, config) of every run of the study, composed (and so validated) before any trains."""
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: expected at least 1 seed per arm")
    out = []
    for arm, arm_overrides in study.arms.items():
        layers = [*study.common, *arm_overrides, *overrides]
        first = int(compose(layers).seed)
        for seed in range(first, first + seeds):
            extra = [f"seed={seed}", f"name={arm}-s{seed}"]
            if runs_dir is not None:
                extra.append(f"runs_dir={runs_dir}")
            out.append((arm, compose([*layers, *extra])))
    return out


class StudyInterrupted(TrainingInterrupted):
    """A study stopped on Ctrl-C or SIGTERM; ``realfake compare --resume DIR`` continues it."""

    def __init__(self, study_dir: Path, interrupted: TrainingInterrupted) -> None:
        super().__init__(interrupted.run_dir, interrupted.signal_name)
        self.study_dir = study_dir
        self.args = (
            f"study interrupted ({interrupted.signal_name}) while training "
            f"{interrupted.run_dir}; continue it with `realfake compare --resume {study_dir}`",
        )


def run_study(
    study: Study | str | Path,
    seeds: int = 1,
    overrides: Sequence[str] = (),
    out_root: str | Path = "studies",
    *,
    resume: str | Path | None = None,
) -> Comparison:
    """Train every arm ``seeds`` times, evaluate each run on its test split, write the table.

    ``resume``: a study folder to continue instead of a new ``<out_root>/<study>-<time>/``; its
    study.json must hold the same plan (study, arms, overrides, seeds, composed configs).
    """
    if not isinstance(study, Study):
        study = load_study(study)
    out_dir = _new_study_dir(Path(out_root), study.name) if resume is None else Path(resume)
    configs = arm_configs(study, seeds, overrides, out_dir / "runs")
    plan = study_plan(study, seeds, overrides, configs)
    record = _claim_or_check(out_dir, plan, resume is not None)
    session: dict[str, Any] = {"started": now(), "wall_s": 0.0}
    session.update({action: [] for action in ACTIONS.values()})
    record["sessions"].append(session)
    started = time.perf_counter()

    def save() -> None:
        session["wall_s"] = time.perf_counter() - started
        write_json(out_dir / PLAN_FILE, record)

    try:
        run_dirs = []
        for _, cfg in configs:
            run = RunDir(out_dir / "runs" / cfg.name)
            state = run_state(run)
            if state == "started":
                train(resume=run.path)  # from its last checkpoint, with its own config.yaml
            elif state == "new":
                train(cfg)
            session[ACTIONS[state]].append(run.name)
            run_dirs.append(run.path)
            save()
        collected = collect(run_dirs, arms=[arm for arm, _ in configs])
        record["train_time_s"] = float(collected.runs["train_time_s"].sum(skipna=True))
        save()
        shown = " ".join([*study.common, *overrides]) or "none"
        spread = f"mean ± sample std over {seeds} seeds" if seeds > 1 else "one seed per arm"
        note = (
            f"{study.description.strip()} Overrides applied to every arm: {shown}; {spread}. "
            f"{_cost_note(record, len(run_dirs))}"
        )
        result = tabulate(collected, out_dir, title=f"study {study.name}", note=note.strip())
        if study.test_on:
            arms = [arm for arm, _ in configs]
            runs, summary = cross_source_table(run_dirs, arms, study.test_on)
            result.files["cross_source"] = write_cross_source(summary, runs, out_dir)
        record["finished"] = now()
    except TrainingInterrupted as exc:
        if isinstance(exc, StudyInterrupted):
            raise
        raise StudyInterrupted(out_dir, exc) from exc
    finally:
        save()
    return result


def continue_study(study_dir: str | Path) -> Comparison:
    """Continue the study in ``study_dir`` as its study.json planned it."""
    stored = read_plan(Path(study_dir))
    study = Study(
        stored["study"],
        stored["arms"],
        stored["common"],
        stored.get("description", ""),
        stored.get("test_on", {}),
    )
    return run_study(study, stored["seeds"], stored["overrides"], resume=study_dir)


def run_state(run: RunDir) -> str:
    """'finished' (its results are written), 'started' (it has a config.yaml) or 'new'."""
    if run.results.is_file() and read_json(run.manifest).get("status") == "finished":
        return "finished"
    return "started" if run.is_run() else "new"


def study_plan(
    study: Study, seeds: int, overrides: Sequence[str], configs: list[tuple[str, DictConfig]]
) -> dict[str, Any]:
    """What a study trains: the request and every run's composed config (as JSON holds it)."""
    plan = {
        "study": study.name,
        "description": study.description,
        "common": list(study.common),
        "arms": {arm: list(arm_overrides) for arm, arm_overrides in study.arms.items()},
        **({"test_on": dict(study.test_on)} if study.test_on else {}),
        "overrides": list(overrides),
        "seeds": seeds,
        "runs": [
            {
                "arm": arm,
                "name": cfg.name,
                "seed": cfg.seed,
                "config": {
                    k: v for k, v in flatten(to_dict(cfg)).items() if k not in UNPLANNED_KEYS
                },
            }
            for arm, cfg in configs
        ],
    }
    return json.loads(json.dumps(plan))  # lists, not tuples: comparable with a stored plan


def read_plan(study_dir: Path) -> dict[str, Any]:
    """The study.json of a study folder, or a CheckpointError saying why there is none."""
    if not study_dir.is_dir():
        raise CheckpointError(f"--resume {study_dir}: no such study folder")
    stored = read_json(study_dir / PLAN_FILE)
    if not stored:
        raise CheckpointError(
            f"--resume {study_dir}: not a study folder (no {PLAN_FILE}; studies started before "
            "--resume existed cannot be continued); start one with `realfake compare study=NAME`"
        )
    missing = [k for k in ("study", "arms", "common", "overrides", "seeds") if k not in stored]
    if missing:
        raise CheckpointError(f"{study_dir / PLAN_FILE} lacks {', '.join(missing)}")
    return stored


def plan_differences(stored: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """What differs between the plan a study started with and the one asked for now."""
    diffs = []
    for key, label in (
        ("study", "study"),
        ("common", "the study's common overrides"),
        ("overrides", "overrides"),
        ("seeds", "--seeds"),
    ):
        if stored.get(key) != planned[key]:
            diffs.append(f"{label}: {stored.get(key)!r} when started, {planned[key]!r} now")
    before, after = stored.get("arms", {}), planned["arms"]
    for arm in [*before, *(a for a in after if a not in before)]:
        if arm not in after:
            diffs.append(f"arm {arm!r} is no longer in the study")
        elif arm not in before:
            diffs.append(f"arm {arm!r} is new")
        elif before[arm] != after[arm]:
            diffs.append(f"arm {arm!r}: {before[arm]!r} when started, {after[arm]!r} now")
    if not diffs and list(before) != list(after):
        diffs.append(f"the arms' order: {list(before)} when started, {list(after)} now")
    if diffs:
        return diffs
    # The same request composed differently: the defaults or a config file changed since.
    stored_runs = {r.get("name"): r.get("config", {}) for r in stored.get("runs", [])}
    for run in planned["runs"]:
        old = stored_runs.get(run["name"], {})
        changed = [k for k, v in run["config"].items() if k in old and old[k] != v]
        if changed:
            shown = ", ".join(f"{k} {old[k]!r} then, {run['config'][k]!r} now" for k in changed[:5])
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            diffs.append(f"run {run['name']} composes differently: {shown}{more}")
    return diffs


def _new_study_dir(out_root: Path, name: str) -> Path:
    base = out_root / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    out_dir, suffix = base, 2
    while out_dir.exists():  # two studies started within the same second
        out_dir, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    return out_dir


def _claim_or_check(out_dir: Path, plan: dict[str, Any], resuming: bool) -> dict[str, Any]:
    """A new study's record (study.json written), or the stored one when it plans the same."""
    if not resuming:
        out_dir.mkdir(parents=True)
        record = {**plan, "started": now(), "sessions": []}
        write_json(out_dir / PLAN_FILE, record)
        return record
    stored = read_plan(out_dir)
    diffs = plan_differences(stored, plan)
    if diffs:
        raise ConfigError(
            f"{out_dir} was started with another plan; it differs in: {'; '.join(diffs)}. "
            f"Continue it as planned with `realfake compare --resume {out_dir}` alone, or start "
            "a new study without --resume"
        )
    stored.setdefault("sessions", [])
    stored.pop("finished", None)  # set again when this session writes the table
    return stored


def _cost_note(record: dict[str, Any], runs: int) -> str:
    """Training time (the runs' own) and wall time (every session) of the study, in words."""
    sessions = record["sessions"]
    wall = sum(float(s.get("wall_s") or 0.0) for s in sessions)
    spent = f"{len(sessions)} sessions" if len(sessions) > 1 else "one session"
    return (
        f"Training time {_duration(record['train_time_s'])}, the sum of the {runs} runs' "
        f"train_time_s; wall time {_duration(wall)} in {spent} (training and evaluation)."
    )


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"
