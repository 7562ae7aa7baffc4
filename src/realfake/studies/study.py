"""Studies: named sets of arms (override lists) trained, evaluated and compared in one table.

A study file (``configs/study/NAME.yaml``) holds ``description``, ``common`` (overrides for
every arm, e.g. the epoch budget) and ``arms`` (name -> overrides). Overrides apply in the
order common, arm, then the caller's, so ``trainer.max_epochs=20`` on the command line raises
the budget of every arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from realfake.errors import ConfigError
from realfake.studies.comparison import Comparison, compare
from realfake.train import compose, train
from realfake.train.config import config_dir


@dataclass
class Study:
    name: str
    arms: dict[str, list[str]]
    common: list[str] = field(default_factory=list)
    description: str = ""


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
    for where, overrides in [("common", common), *arms.items()]:
        if not isinstance(overrides, (ListConfig, list)) or not all(
            isinstance(o, str) and "=" in o for o in overrides
        ):
            raise ConfigError(f"{path}: '{where}' must be a list of KEY=VALUE strings")
    return Study(
        name=path.stem,
        arms={str(k): [str(o) for o in v] for k, v in arms.items()},
        common=[str(o) for o in common],
        description=str(raw.get("description") or ""),
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


def run_study(
    study: Study | str | Path,
    seeds: int = 1,
    overrides: Sequence[str] = (),
    out_root: str | Path = "studies",
) -> Comparison:
    """Train every arm ``seeds`` times, evaluate each run on its test split, write the table."""
    if not isinstance(study, Study):
        study = load_study(study)
    base = Path(out_root) / f"{study.name}-{datetime.now():%Y%m%d-%H%M%S}"
    out_dir, suffix = base, 2
    while out_dir.exists():  # two studies started within the same second
        out_dir, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    configs = arm_configs(study, seeds, overrides, out_dir / "runs")
    arms, run_dirs = [], []
    for arm, cfg in configs:
        result = train(cfg)
        arms.append(arm)
        run_dirs.append(result.run_dir)
    shown = " ".join([*study.common, *overrides]) or "none"
    spread = f"mean ± sample std over {seeds} seeds" if seeds > 1 else "one seed per arm"
    note = f"{study.description.strip()} Overrides applied to every arm: {shown}; {spread}."
    return compare(run_dirs, out_dir, arms=arms, title=f"study {study.name}", note=note.strip())
