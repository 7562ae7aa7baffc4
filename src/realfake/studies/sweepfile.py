"""Sweep files: our own format (``configs/sweep/*.yaml``) and W&B's, read into one ``SweepSpec``.

Our format, in Optuna's words::

    description: what the sweep looks for
    metric: val/loss            # val/loss | val/acc
    direction: minimize         # minimize | maximize
    sampler: tpe                # tpe | gp | random | grid
    pruner: median              # none | median | hyperband, or {type: hyperband, min_resource: 1,
                                #   reduction_factor: 3}
    trials: 12
    common: [trainer.max_epochs=3]          # overrides for every trial
    params:
      optim.lr: {type: float, low: 1.0e-3, high: 0.3, log: true}
      data.batch_size: {type: int, low: 32, high: 128, step: 32}
      model.name: [fastnet, resnet18]       # a list: a categorical choice
      trainer.deterministic: true           # a scalar: a fixed value

W&B's format as users write it (https://docs.wandb.ai/guides/sweeps/sweep-config-keys):
``method`` grid | random | bayes, ``metric`` {name, goal, target}, ``parameters`` (``value``,
``values``, or ``distribution`` with min/max, q, mu/sigma), ``early_terminate`` hyperband and
``run_cap``. Parameter names are our dotted config keys or an alias (``ALIASES``); W&B metric
names map to ours (``METRICS``). Keys that only mean something in W&B's cloud are ignored with
one logged line.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from realfake.errors import ConfigError

# realfake.train (compose, the config schema) is imported inside the functions that need it: it
# pulls in Lightning, and the command line reads the closed sets below while building its parser.

log = logging.getLogger(__name__)

# The MLOps write-up's parameter names (and common W&B ones) -> our config keys.
ALIASES = {
    "lr": "optim.lr",
    "learning_rate": "optim.lr",
    "optimizer": "optim.name",
    "weight_decay": "optim.weight_decay",
    "momentum": "optim.momentum",
    "dropout": "model.dropout",
    "architecture": "model.name",
    "model": "model.name",
    "batch_size": "data.batch_size",
    "epochs": "trainer.max_epochs",
    "label_smoothing": "trainer.label_smoothing",
}

# W&B metric names -> the per-epoch metric our training logs.
METRICS = {
    "val/loss": "val/loss",
    "val_loss": "val/loss",
    "valid_loss": "val/loss",
    "validation_loss": "val/loss",
    "validation/loss": "val/loss",
    "val/acc": "val/acc",
    "val_acc": "val/acc",
    "val/accuracy": "val/acc",
    "val_accuracy": "val/acc",
    "valid_acc": "val/acc",
    "validation_accuracy": "val/acc",
    "validation/accuracy": "val/acc",
    "accuracy": "val/acc",
}

# The closed sets of a sweep's choices, each written once: the sweep files, run_sweep and the
# command line's choices= all read them.
SAMPLERS = ("tpe", "gp", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("minimize", "maximize")
STORAGE_KINDS = ("sqlite", "postgresql", "mysql")  # the SQLAlchemy back ends Optuna's RDB supports
WANDB_METHODS = {"bayes": "tpe", "random": "random", "grid": "grid"}
WANDB_CLOUD_KEYS = ("entity", "project", "command", "program")
WANDB_DISTRIBUTIONS = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "log_uniform_values",
    "log_uniform",
    "q_uniform",
    "q_log_uniform_values",
    "normal",
)
# W&B's normal draws are unbounded; we draw the quantile in [Φ(-4), Φ(4)], i.e. within 4 σ.
NORMAL_TAIL = 4.0


@dataclass(frozen=True)
class Param:
    """One searched (or fixed) config key and how its values are drawn."""

    key: str  # our dotted config key
    kind: str  # fixed | categorical | float | int | normal
    label: str = ""  # the name in the file (an alias, or the key)
    value: Any = None  # fixed
    choices: tuple[Any, ...] = ()  # categorical
    low: float | None = None  # float, int
    high: float | None = None
    log: bool = False
    step: float | None = None  # int: Optuna's step; float: W&B's q (round(x / q) * q)
    mu: float = 0.0  # normal
    sigma: float = 1.0

    def suggest(self, trial: Any) -> Any:
        """The value of this parameter for an Optuna trial (the sampler picks it)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        if self.kind == "normal":
            # The sampler searches the quantile, so every sampler sees a bounded box; the value
            # follows N(mu, sigma) when the quantile is uniform (random search).
            lo = statistics.NormalDist().cdf(-NORMAL_TAIL)
            u = trial.suggest_float(f"{self.key}~quantile", lo, 1.0 - lo)
            return statistics.NormalDist(self.mu, self.sigma).inv_cdf(u)
        x = trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)
        return self.quantise(x)

    def quantise(self, x: float) -> float | int:
        """W&B's q: ``round(x / q) * q``; a whole q gives whole numbers (batch sizes)."""
        if not self.step:
            return x
        q = self.step
        if isinstance(q, int) and not isinstance(q, bool):
            k = round(x / q)
            return max(q, k * q) if self.log else k * q
        return float(round(round(x / q) * q, 12))

    def samples(self) -> list[Any]:
        """Values that stand for the whole range when checking the key and type before a run."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "normal":
            return [self.mu]
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        lo, hi = float(self.low), float(self.high)
        # An interior point that is not a whole number: an integer key must refuse it.
        if self.log:
            inner = math.exp(math.log(lo) + 0.382 * (math.log(hi) - math.log(lo)))
        else:
            inner = lo + 0.382 * (hi - lo)
        return [self.quantise(lo), self.quantise(hi), self.quantise(inner)]

    def grid(self) -> list[Any] | None:
        """The values of a grid search, or None for a continuous range."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.kind == "float" and self.step and not self.log:
            n = math.floor((float(self.high) - float(self.low)) / self.step + 1e-9)
            return sorted({self.quantise(float(self.low) + i * self.step) for i in range(n + 1)})
        return None

    def describe(self) -> str:
        name = self.label if self.label == self.key else f"{self.label} ({self.key})"
        if self.kind == "fixed":
            return f"{name} = {self.value!r}"
        if self.kind == "categorical":
            return f"{name} in {list(self.choices)}"
        if self.kind == "normal":
            return f"{name} ~ N({self.mu}, {self.sigma})"
        scale = " log" if self.log else ""
        step = f" step {self.step}" if self.step else ""
        return f"{name} in [{self.low}, {self.high}]{scale}{step}"


@dataclass
class SweepSpec:
    """A search: parameters, the metric and its direction, sampler, pruner and budget."""

    name: str
    params: dict[str, Param]  # by config key
    metric: str = "val/loss"  # val/loss | val/acc (per epoch)
    direction: str = "minimize"  # one of DIRECTIONS
    target: float | None = None  # stop the sweep once a trial reaches it
    sampler: str = "tpe"  # one of SAMPLERS
    pruner: str = "none"  # one of PRUNERS
    min_resource: int = 1  # Hyperband: epochs before the first cut
    reduction_factor: int = 3  # Hyperband's eta
    trials: int | None = None
    overrides: list[str] = field(default_factory=list)  # applied to every trial
    description: str = ""
    source: str = ""  # the file it came from
    format: str = "realfake"  # realfake | wandb
    ignored: list[str] = field(default_factory=list)  # W&B cloud keys seen and ignored

    def grid_space(self) -> dict[str, list[Any]]:
        """Optuna's GridSampler search space; a continuous parameter is an error naming it."""
        space: dict[str, list[Any]] = {}
        for p in self.params.values():
            values = p.grid()
            if values is None:
                raise ConfigError(
                    f"{self.source}: grid search needs a finite set of values, but parameter "
                    f"'{p.label}' is {p.describe()}; give values: [...], or q for q_uniform, "
                    "or use method random or bayes"
                )
            if p.kind != "fixed":
                space[p.key] = values
        return space

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_space().values())

    def fingerprint(self) -> str:
        """What must stay the same for a study to be continued (space, metric, direction)."""
        params = {k: p.describe() for k, p in sorted(self.params.items())}
        return json.dumps({"params": params, "metric": self.metric, "direction": self.direction})


def available_sweeps() -> list[str]:
    """Names of the shipped sweep files."""
    from realfake.train.config import config_dir

    return sorted(p.stem for p in (config_dir() / "sweep").glob("*.yaml"))


def load_sweep(name_or_path: str | Path) -> SweepSpec:
    """A shipped sweep by name, or a sweep YAML file (ours or W&B's) by path."""
    from realfake.train.config import config_dir

    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / "sweep" / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"no sweep file {name_or_path} (looked for {path}); shipped sweeps: "
            f"{', '.join(available_sweeps()) or 'none'}"
        )
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # yaml syntax errors come in several types
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if "parameters" in raw or "method" in raw:
        spec = _from_wandb(raw, path)
    elif "params" in raw:
        spec = _from_realfake(raw, path)
    else:
        raise ConfigError(
            f"{path}: neither a realfake sweep (a 'params' mapping) nor a W&B sweep "
            "('method' and 'parameters')"
        )
    if spec.ignored:
        log.warning(
            "%s: ignoring W&B cloud keys %s (they only mean something to W&B's servers)",
            path,
            ", ".join(spec.ignored),
        )
    return spec


# --- our format ------------------------------------------------------------------------------

_REALFAKE_KEYS = (
    "description",
    "metric",
    "direction",
    "target",
    "sampler",
    "pruner",
    "trials",
    "common",
    "params",
)


def _from_realfake(raw: dict[str, Any], path: Path) -> SweepSpec:
    _no_unknown(raw, _REALFAKE_KEYS, str(path))
    metric = _metric(raw.get("metric", "val/loss"), path)
    direction = check_choice(raw.get("direction", _goal_of(metric)), DIRECTIONS, path, "direction")
    sampler = check_choice(raw.get("sampler", "tpe"), SAMPLERS, path, "sampler")
    pruner_raw = raw.get("pruner") or "none"
    pruner: dict[str, Any] = pruner_raw if isinstance(pruner_raw, dict) else {"type": pruner_raw}
    _no_unknown(pruner, ("type", "min_resource", "reduction_factor"), f"{path}: pruner")
    common = raw.get("common") or []
    if not isinstance(common, list) or not all(isinstance(o, str) and "=" in o for o in common):
        raise ConfigError(f"{path}: 'common' must be a list of KEY=VALUE strings")
    params_raw = raw.get("params")
    if not isinstance(params_raw, dict) or not params_raw:
        raise ConfigError(f"{path}: 'params' must map config keys to their ranges or values")
    params = {}
    for name, body in params_raw.items():
        p = _realfake_param(str(name), body, path)
        params[p.key] = p
    return SweepSpec(
        name=path.stem,
        params=params,
        metric=metric,
        direction=direction,
        target=_number_or_none(raw.get("target"), path, "target"),
        sampler=sampler,
        pruner=check_choice(pruner.get("type", "none"), PRUNERS, path, "pruner"),
        min_resource=_positive_int(pruner.get("min_resource", 1), path, "pruner.min_resource"),
        reduction_factor=_positive_int(
            pruner.get("reduction_factor", 3), path, "pruner.reduction_factor", minimum=2
        ),
        trials=_positive_int(raw["trials"], path, "trials") if "trials" in raw else None,
        overrides=[str(o) for o in common],
        description=str(raw.get("description") or ""),
        source=str(path),
        format="realfake",
    )


def _realfake_param(name: str, body: Any, path: Path) -> Param:
    key = _key(name, path)
    where = f"{path}: parameter '{name}'"
    if isinstance(body, list):
        return _categorical(key, name, body, where)
    if not isinstance(body, dict):
        return Param(key, "fixed", name, value=body)
    _no_unknown(body, ("type", "low", "high", "log", "step", "choices", "value"), where)
    kind = body.get("type")
    if kind == "fixed":
        return Param(key, "fixed", name, value=body.get("value"))
    if kind == "categorical":
        return _categorical(key, name, body.get("choices"), where)
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}: type {kind!r}; expected float, int, categorical or fixed")
    low, high = _range(body.get("low"), body.get("high"), where, integer=kind == "int")
    log_scale = bool(body.get("log", False))
    step = body.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"{where}: step {step!r} must be a number > 0")
    if log_scale and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    if log_scale and step is not None and kind == "int" and step != 1:
        raise ConfigError(f"{where}: an int range cannot be both log and stepped")
    return Param(key, kind, name, low=low, high=high, log=log_scale, step=step)


# --- W&B's format ----------------------------------------------------------------------------

_WANDB_KEYS = (
    "name",
    "description",
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    *WANDB_CLOUD_KEYS,
)


def _from_wandb(raw: dict[str, Any], path: Path) -> SweepSpec:
    _no_unknown(raw, _WANDB_KEYS, f"{path} (W&B sweep)")
    method = check_choice(raw.get("method"), tuple(WANDB_METHODS), path, "method")
    metric_raw = raw.get("metric") or {"name": "val/loss", "goal": "minimize"}
    if not isinstance(metric_raw, dict):
        raise ConfigError(f"{path}: 'metric' must be a mapping with name and goal")
    _no_unknown(metric_raw, ("name", "goal", "target"), f"{path}: metric")
    metric = _metric(metric_raw.get("name", "val/loss"), path)
    goal = check_choice(metric_raw.get("goal", "minimize"), DIRECTIONS, path, "metric.goal")
    pruner, min_resource, eta = "none", 1, 3
    early = raw.get("early_terminate")
    if early:
        if not isinstance(early, dict):
            raise ConfigError(f"{path}: 'early_terminate' must be a mapping (type: hyperband)")
        _no_unknown(
            early,
            ("type", "min_iter", "max_iter", "eta", "s", "strict"),
            f"{path}: early_terminate",
        )
        if early.get("type") != "hyperband":
            raise ConfigError(
                f"{path}: early_terminate type {early.get('type')!r}; W&B (and realfake) know "
                "only hyperband"
            )
        pruner = "hyperband"
        min_resource = _positive_int(early.get("min_iter", 1), path, "early_terminate.min_iter")
        eta = _positive_int(early.get("eta", 3), path, "early_terminate.eta", minimum=2)
    parameters = raw.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError(f"{path}: 'parameters' must map parameter names to their values")
    params = {}
    for name, body in parameters.items():
        p = _wandb_param(str(name), body, path)
        if p.key in params:
            raise ConfigError(
                f"{path}: parameters '{params[p.key].label}' and '{name}' both set {p.key}"
            )
        params[p.key] = p
    return SweepSpec(
        name=str(raw.get("name") or path.stem),
        params=params,
        metric=metric,
        direction=goal,
        target=_number_or_none(metric_raw.get("target"), path, "metric.target"),
        sampler=WANDB_METHODS[method],
        pruner=pruner,
        min_resource=min_resource,
        reduction_factor=eta,
        trials=_positive_int(raw["run_cap"], path, "run_cap") if raw.get("run_cap") else None,
        description=str(raw.get("description") or ""),
        source=str(path),
        format="wandb",
        ignored=[k for k in WANDB_CLOUD_KEYS if k in raw],
    )


def _wandb_param(name: str, body: Any, path: Path) -> Param:
    key = _key(name, path)
    where = f"{path}: parameter '{name}'"
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{value: X}} or {{values: [...]}}")
    if "parameters" in body:
        raise ConfigError(
            f"{where}: nested parameters are not supported; name each one by its dotted "
            "config key instead (e.g. optim.lr)"
        )
    _no_unknown(body, ("value", "values", "distribution", "min", "max", "q", "mu", "sigma"), where)
    dist = body.get("distribution")
    if dist is None:
        if "value" in body:
            dist = "constant"
        elif "values" in body:
            dist = "categorical"
        elif "min" in body and "max" in body:  # W&B infers the distribution from the bounds
            ints = all(
                isinstance(body[k], int) and not isinstance(body[k], bool) for k in ("min", "max")
            )
            dist = "int_uniform" if ints else "uniform"
        else:
            raise ConfigError(f"{where}: give value, values, or a distribution with min and max")
    if dist not in WANDB_DISTRIBUTIONS:
        raise ConfigError(
            f"{where}: distribution {dist!r} is not supported; supported: "
            f"{', '.join(WANDB_DISTRIBUTIONS)}"
        )
    if dist == "constant":
        return Param(key, "fixed", name, value=body.get("value"))
    if dist == "categorical":
        return _categorical(key, name, body.get("values"), where)
    if dist == "normal":
        mu = _number_or_none(body.get("mu", 0.0), path, f"{name}.mu")
        sigma = _number_or_none(body.get("sigma", 1.0), path, f"{name}.sigma")
        if sigma is None or sigma <= 0 or mu is None:
            raise ConfigError(f"{where}: a normal distribution needs mu and sigma > 0")
        return Param(key, "normal", name, mu=mu, sigma=sigma)
    integer = dist == "int_uniform"
    low, high = _range(body.get("min"), body.get("max"), where, integer=integer)
    if integer:
        return Param(key, "int", name, low=low, high=high)
    q = body.get("q", 1.0) if dist.startswith("q_") else None
    if q is not None and (not isinstance(q, (int, float)) or q <= 0):
        raise ConfigError(f"{where}: q {q!r} must be a number > 0")
    if dist == "log_uniform":  # W&B: min and max are natural logarithms of the bounds
        return Param(key, "float", name, low=math.exp(low), high=math.exp(high), log=True)
    if dist in ("log_uniform_values", "q_log_uniform_values"):
        if low <= 0:
            raise ConfigError(f"{where}: {dist} needs min > 0, got {low}")
        return Param(key, "float", name, low=low, high=high, log=True, step=q)
    return Param(key, "float", name, low=low, high=high, step=q)  # uniform, q_uniform


# --- shared checks ---------------------------------------------------------------------------


def _key(name: str, path: Path) -> str:
    """Our config key for a parameter name: an alias, a dotted key, or a top-level key."""
    from realfake.train.config import TrainConfig

    if name in ALIASES:
        return ALIASES[name]
    top = {f for f in TrainConfig.__dataclass_fields__ if "." not in f}
    if "." in name or name in top:
        return name
    aliases = ", ".join(f"{a} -> {k}" for a, k in ALIASES.items())
    raise ConfigError(
        f"{path}: unknown parameter '{name}': use a dotted config key (e.g. optim.lr, "
        f"model.options.width) or one of the aliases {aliases}"
    )


def _categorical(key: str, label: str, values: Any, where: str) -> Param:
    if isinstance(values, (ListConfig, DictConfig)):
        values = OmegaConf.to_container(values)
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: values must be a non-empty list")
    for v in values:
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise ConfigError(
                f"{where}: value {v!r} is not a number, string, boolean or null (a list value "
                "cannot be searched; fix it in the overrides instead)"
            )
    return Param(key, "categorical", label, choices=tuple(values))


def _range(low: Any, high: Any, where: str, integer: bool) -> tuple[float, float]:
    numbers = (int,) if integer else (int, float)
    for word, v in (("min/low", low), ("max/high", high)):
        if not isinstance(v, numbers) or isinstance(v, bool):
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{where}: {word} {v!r} is not {kind}")
    if low >= high:
        raise ConfigError(f"{where}: empty range: min {low} must be below max {high}")
    return low, high


def _metric(name: Any, path: Path) -> str:
    if str(name) in METRICS:
        return METRICS[str(name)]
    known = ", ".join(f"{k} -> {v}" for k, v in METRICS.items())
    raise ConfigError(f"{path}: unknown metric {name!r}; known names: {known}")


def _goal_of(metric: str) -> str:
    return "maximize" if metric == "val/acc" else "minimize"


def check_choice(value: Any, allowed: Sequence[str], where: str | Path, what: str) -> str:
    """``value`` if it is one of ``allowed``, else a ConfigError naming where it came from."""
    if value not in allowed:
        raise ConfigError(f"{where}: {what} {value!r}; expected one of {', '.join(allowed)}")
    return str(value)


def _positive_int(value: Any, path: Path, what: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{path}: {what} {value!r}; expected an integer >= {minimum}")
    return value


def _number_or_none(value: Any, path: Path, what: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"{path}: {what} {value!r} is not a number")
    return float(value)


def _no_unknown(raw: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [str(k) for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


# --- before any trial ------------------------------------------------------------------------


def override(key: str, value: Any) -> str:
    """``KEY=VALUE`` as ``compose`` reads it (true/false/null, floats in full precision)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return f"{key}={text}"


def check_spec(spec: SweepSpec, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the base config and every parameter's sample values; the base config.

    A key that does not exist or a value of the wrong type stops here, naming the parameter,
    before any trial runs.
    """
    from realfake.train import compose

    base = [*spec.overrides, *overrides]
    try:
        cfg = compose(base)
    except ConfigError as exc:
        raise ConfigError(f"{spec.source}: overrides {base}: {exc}") from None
    for p in spec.params.values():
        for value in p.samples():
            try:
                compose([*base, override(p.key, value)])
            except ConfigError as exc:
                raise ConfigError(
                    f"{spec.source}: parameter '{p.label}' ({p.describe()}), value {value!r}: {exc}"
                ) from None
    if spec.sampler == "grid":
        spec.grid_space()
    return cfg
