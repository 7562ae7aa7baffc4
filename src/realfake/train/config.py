"""Training configuration: typed dataclasses (the single source of defaults) plus YAML overlays.

A config is composed in this order, later layers winning:
  1. the dataclass defaults below;
  2. ``experiment=NAME`` -> ``configs/experiment/NAME.yaml`` (a small diff over the defaults);
  3. group choices such as ``model=resnext29`` -> ``configs/model/resnext29.yaml`` into ``model``;
  4. dotted overrides such as ``optim.lr=1e-3``.
Unknown keys and wrong types stop with a ConfigError naming the key and what would be allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from realfake.data.config import DataConfig
from realfake.errors import ConfigError


@dataclass
class ModelConfig:
    name: str = "fastnet"  # compact ResNet-9 layout: trains in minutes on a CPU
    dropout: float = 0.0  # before the classifier
    block_dropout: float = 0.0  # inside residual / VGG blocks, as the seeds did
    stem: str | None = None  # "cifar" | "imagenet"; None picks from the image size
    zero_init_residual: bool = False  # last BN of each branch starts at 0 (Goyal et al. 2017)
    # Further constructor options of the chosen model, e.g. model.options.width=48 for fastnet
    # (`realfake models list` shows them; an unknown one is an error naming them).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd (Nesterov when nesterov=true) | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # Decaying BN scales and biases only shrinks them without regularising (Jia et al. 2018).
    exclude_bn_bias_from_decay: bool = True


@dataclass
class SchedConfig:
    name: str = "onecycle"  # none | cosine | onecycle | step | plateau
    warmup_epochs: float = 0.0  # linear warm-up (one-cycle has its own: pct_start)
    min_lr: float = 0.0  # floor of cosine, relative to nothing (absolute lr)
    pct_start: float = 0.25  # one-cycle: fraction of steps spent rising
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step / plateau: decay factor
    plateau_patience: int = 2  # plateau: epochs without val loss improvement


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    monitor: str = "val/loss"
    mode: str = "min"  # min | max
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True  # load the best checkpoint's weights when training ends


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"  # auto | 32-true | bf16-mixed | 16-mixed
    # None = auto: on CUDA on (the NHWC layout tensor cores want); on a CPU the faster layout in
    # a short timing of this model at this batch size. It depends on the model: 1.2-2.1x faster
    # for fastnet, resnet18, resnext29 but 0.82x for vgg16 here (BENCHMARKS.md, "per setting").
    channels_last: bool | None = None
    compile: bool = False
    gradient_clip_val: float | None = None
    label_smoothing: float = 0.1  # Szegedy et al. 2016; also part of airbench's recipe
    # Validation and test average the image's and its mirror's probabilities (airbench's TTA);
    # `realfake evaluate` and `predict` follow the run's choice unless told --tta/--no-tta.
    flip_tta: bool = True
    ema_decay: float | None = (
        None  # e.g. 0.999; validation and checkpoints use the averaged weights
    )
    deterministic: bool = False
    # An int is a number of batches, a float a fraction (Lightning's rule); for smoke tests.
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    log_every_n_steps: int = 10


@dataclass
class LoggingConfig:
    mlflow: bool = True
    tracking_uri: str | None = None  # default: sqlite:///mlruns.db in the working directory
    experiment_name: str = "realfake"
    tensorboard: bool = False
    wandb: bool = False
    wandb_mode: str = "offline"  # offline works with no network; "online" needs a login
    wandb_project: str = "realfake"
    progress: str = "auto"  # auto (rich on a terminal, plain lines otherwise) | rich | plain | none


@dataclass
class TrainConfig:
    name: str | None = None  # run directory name; default <model>-<timestamp>
    runs_dir: str = "runs"
    seed: int = 0
    evaluate_test: bool = True  # evaluate the best weights on the test split at the end
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


# Values that are strings in YAML but must come from a closed set.
CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("sgd", "adam", "adamw"),
    "sched.name": ("none", "cosine", "onecycle", "step", "plateau"),
    "early_stopping.mode": ("min", "max"),
    "model.stem": ("cifar", "imagenet"),
    "data.resize": ("stretch", "center_crop"),
    "trainer.precision": ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"),
    "logging.progress": ("auto", "rich", "plain", "none"),
    "logging.wandb_mode": ("offline", "online", "disabled"),
}

GROUPS = ("data", "model", "optim", "sched", "early_stopping", "trainer", "logging")


def config_dir() -> Path:
    """The shipped YAML configs (``configs/`` in the source tree is a link to it)."""
    return Path(str(files("realfake") / "configs"))


def available(group: str) -> list[str]:
    """Names of the YAML files in one config group (or ``experiment``)."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def _read_yaml(path: Path) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # yaml syntax errors come in several types
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return loaded


def _describe(exc: OmegaConfBaseException, where: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or "?"
    if isinstance(exc, ConfigKeyError):
        parent, _, leaf = str(key).rpartition(".")
        allowed = _fields_at(parent)
        close = difflib.get_close_matches(leaf, allowed, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return ConfigError(
            f"unknown config key '{key}' ({where}){hint} Allowed keys"
            f"{' under ' + parent if parent else ''}: {', '.join(allowed)}"
        )
    if isinstance(exc, ValidationError):
        msg = str(exc).splitlines()[0]
        return ConfigError(f"bad value for config key '{key}' ({where}): {msg}")
    return ConfigError(f"config error at '{key}' ({where}): {str(exc).splitlines()[0]}")


def _fields_at(dotted: str) -> list[str]:
    cls: Any = TrainConfig
    for part in filter(None, dotted.split(".")):
        hit = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if hit is None or not dataclasses.is_dataclass(hit.default_factory()):  # type: ignore[misc]
            return []
        cls = type(hit.default_factory())  # type: ignore[misc]
    return [f.name for f in dataclasses.fields(cls)]


def _merge(base: DictConfig, layer: Any, where: str) -> DictConfig:
    try:
        merged = OmegaConf.merge(base, layer)
    except OmegaConfBaseException as exc:
        raise _describe(exc, where) from exc
    assert isinstance(merged, DictConfig)
    return merged


def _check_choices(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and str(value) not in allowed:
            raise ConfigError(
                f"bad value for config key '{key}': {value!r}; allowed: {', '.join(allowed)}"
            )
    positive = {
        "trainer.max_epochs": cfg.trainer.max_epochs,
        "data.batch_size": cfg.data.batch_size,
        "optim.lr": cfg.optim.lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"bad value for config key '{key}': {value}; it must be > 0")
    if not 0.0 <= cfg.trainer.label_smoothing < 1.0:
        raise ConfigError("bad value for config key 'trainer.label_smoothing': must be in [0, 1)")
    _check_model_options(cfg)


def _check_model_options(cfg: DictConfig) -> None:
    """``model.options`` must be options the chosen model takes (checked before any run starts)."""
    options = dict(cfg.model.options or {})
    if not options:
        return
    from realfake.models import COMMON_OPTIONS, ModelError, own_options

    try:
        accepted = own_options(cfg.model.name)
    except ModelError as exc:
        raise ConfigError(f"bad value for config key 'model.name': {exc}") from exc
    own = {f.name for f in dataclasses.fields(ModelConfig)}
    for key in options:
        if key in own or key in COMMON_OPTIONS:
            where = f"model.{key}" if key in own else "the data (data.image_size, RGB input)"
            raise ConfigError(f"config key 'model.options.{key}' is set by {where}, not here")
        if key not in accepted:
            raise ConfigError(
                f"unknown config key 'model.options.{key}': model {cfg.model.name!r} takes "
                f"{', '.join(sorted(accepted)) if accepted else 'no further options'}"
            )


def compose(
    overrides: list[str] | tuple[str, ...] = (), base: DictConfig | None = None
) -> DictConfig:
    """Build a validated config from ``experiment=``/group choices and dotted overrides."""
    cfg = base if base is not None else OmegaConf.structured(TrainConfig)
    choices: list[tuple[str, str]] = []
    dotted: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        if key == "experiment" or (key in GROUPS and "." not in key and _is_group_file(key, value)):
            choices.append((key, value))
        else:
            dotted.append(item)
    # The experiment comes first so that explicit group choices and overrides win over it.
    choices.sort(key=lambda kv: kv[0] != "experiment")
    for group, name in choices:
        path = config_dir() / group / f"{name}.yaml"
        if not path.is_file():
            known = available(group)
            raise ConfigError(
                f"no {group} config named '{name}' (looked for {path}); available: "
                f"{', '.join(known) or 'none'}"
            )
        layer = _read_yaml(path)
        if group != "experiment":
            layer = OmegaConf.create({group: layer})
        cfg = _merge(cfg, layer, f"from {path.name}")
    if dotted:
        try:
            layer = OmegaConf.from_dotlist(dotted)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"could not parse overrides {dotted}: {exc}") from exc
        cfg = _merge(cfg, layer, "command line")
    _check_choices(cfg)
    return cfg


def _is_group_file(group: str, value: str) -> bool:
    return (config_dir() / group / f"{value}.yaml").is_file()


def load_file(path: str | Path) -> DictConfig:
    """Load a saved ``config.yaml`` (for instance from a run directory) onto the schema."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    cfg = _merge(OmegaConf.structured(TrainConfig), _read_yaml(path), f"from {path}")
    _check_choices(cfg)
    return cfg


def to_object(cfg: DictConfig) -> TrainConfig:
    """The config as plain dataclasses (what the training code reads)."""
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, TrainConfig)
    return obj


def to_dict(cfg: TrainConfig | DictConfig) -> dict[str, Any]:
    """The config as nested plain dicts (safe to store in a checkpoint or a YAML file)."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    out = OmegaConf.to_container(node, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]


def to_yaml(cfg: TrainConfig | DictConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for trackers that take flat parameters)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
