"""Training configuration: typed dataclasses (the single source of defaults) plus YAML overlays.

A config is composed in this order, later layers winning:
  1. the dataclass defaults below;
  2. ``experiment=NAME`` -> ``configs/experiment/NAME.yaml`` (a small diff over the defaults),
     or ``experiment=PATH`` to any such YAML file;
  3. group choices such as ``model=resnext29`` -> ``configs/model/resnext29.yaml`` into ``model``
     (``model=NAME`` of any registered model without a file sets ``model.name``);
  4. dotted overrides such as ``optim.lr=1e-3``.
A value ``$REALFAKE_DATA/REL`` in any layer names ``REL`` inside the folder of data sets that the
environment variable ``REALFAKE_DATA`` gives; it is replaced by that absolute path as the layer
is read, and stops with a ConfigError when the variable is unset or the file is missing
(``data_location``), unless the key is set again on the command line.
Unknown keys and wrong types stop with a ConfigError naming the key and what would be allowed
(booleans on the command line are true/false or 1/0; ``model.options`` take the type of the
model builder's default), and so does an accelerator this machine does not have (``validate``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import re
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from realfake.data.config import RESIZE_POLICIES, DataConfig
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
    # None = auto, by a fixed rule (never a timing, which would make the numbers depend on the
    # machine's load): on for CUDA (the NHWC layout tensor cores want) and several processes; on
    # a CPU on except for VGG, as measured: 1.2-2.1x faster for fastnet, resnet18, resnext29 but
    # 0.82x for vgg16 (BENCHMARKS.md, "per setting"). The choice is recorded in config.yaml.
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
class AdversarialConfig:
    # Adversarial training (realfake.attacks): each training batch is replaced by its attack on
    # the network being trained (in training mode) before the loss; "none" trains on clean
    # images. fgsm_rs is fast adversarial training (Wong et al. 2020: FGSM from a random start in
    # the ε-ball); pgd is Madry et al. 2018's (steps times the cost). ε and α are in 1/255 of the
    # pixel range, the unit of the robustness grid's fgsm:EPS and pgd:EPS.
    attack: str = "none"  # none | fgsm_rs | fgsm | pgd
    eps: float = 8.0  # L∞ radius in 1/255 (Wong et al.'s 8/255 on CIFAR-10)
    # Step size in 1/255; None: the attack's own rule (fgsm_rs 1.25·ε, fgsm ε, pgd 2.5·ε/steps).
    alpha: float | None = None
    steps: int | None = None  # pgd only; None: the attack's own (20; experiment=adversarial sets 2)


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
    # The MLflow run this one nests under (tag mlflow.parentRunId); a sweep sets it per trial.
    parent_run_id: str | None = None


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
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


# Values that are strings in YAML but must come from a closed set.
CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("sgd", "adam", "adamw"),
    "sched.name": ("none", "cosine", "onecycle", "step", "plateau"),
    "early_stopping.mode": ("min", "max"),
    "model.stem": ("cifar", "imagenet"),
    "data.resize": RESIZE_POLICIES,
    "trainer.precision": ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"),
    "trainer.accelerator": ("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "logging.progress": ("auto", "rich", "plain", "none"),
    "logging.wandb_mode": ("offline", "online", "disabled"),
    "adversarial.attack": ("none", "fgsm_rs", "fgsm", "pgd"),
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
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return loaded


# The documented folder of data sets (e.g. $REALFAKE_DATA/cifake-sample/train.tar). Config files
# name files under it instead of paths relative to the working directory, so a shipped config
# means the same from any folder; realfake only reads the variable, never sets it.
DATA_ENV = "REALFAKE_DATA"
_DATA_PREFIX = f"${DATA_ENV}/"


def data_location(value: str, key: str, where: str) -> str:
    """The absolute path that ``$REALFAKE_DATA/REL`` names; ConfigError if unset or missing."""
    relative = value[len(_DATA_PREFIX) :]
    fix = f"or give {key}=PATH"
    root = os.environ.get(DATA_ENV, "").strip()
    if not root:
        raise ConfigError(
            f"config key '{key}' ({where}) is {value}, but the environment variable {DATA_ENV} "
            f"is not set: set {DATA_ENV} to the folder that holds {relative}, {fix}"
        )
    path = Path(os.path.abspath(Path(root).expanduser() / relative))  # from any folder alike
    if not path.exists():
        raise ConfigError(
            f"config key '{key}' ({where}) is {value}, but {path} does not exist "
            f"({DATA_ENV}={root}): set {DATA_ENV} to the folder that holds {relative}, {fix}"
        )
    return str(path)


def _data_locations(layer: DictConfig, where: str, keep: Collection[str] = ()) -> DictConfig:
    """``layer`` with each ``$REALFAKE_DATA/REL`` value replaced by its path (``data_location``).

    Keys in ``keep``, and keys under them, are set again later on the command line: that value
    wins, so the file's is left as it is.
    """
    container = OmegaConf.to_container(layer, resolve=False)
    assert isinstance(container, dict)
    for key, value in flatten(container).items():
        if not (isinstance(value, str) and value.startswith(_DATA_PREFIX)):
            continue
        if any(key == k or key.startswith(f"{k}.") for k in keep):
            continue
        OmegaConf.update(layer, key, data_location(value, key, where), merge=False)
    return layer


# Override keys: dotted Python names (a list is set whole, e.g. optim.betas=[0.9,0.99]).
_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# Booleans on the command line: only these words (YAML's yes/no/on/off/y/n are refused).
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}


def _describe(
    exc: Exception, where: str, key_hint: str | None = None, raw: str | None = None
) -> ConfigError:
    """One sentence for an OmegaConf error, naming the key and, for a wrong type, what fits."""
    key = getattr(exc, "full_key", None) or key_hint or "?"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ConfigKeyError):
        parent, _, leaf = str(key).rpartition(".")
        allowed = _fields_at(parent)
        close = difflib.get_close_matches(leaf, allowed, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return ConfigError(
            f"unknown config key '{key}' ({where}){hint} Allowed keys"
            f"{' under ' + parent if parent else ''}: {', '.join(allowed)}"
        )
    if key != "?" and _is_section(str(key)):
        fields = _fields_at(str(key))
        return ConfigError(
            f"config key '{key}' ({where}) is a section, not a value: set one of its keys, "
            f"e.g. {key}.{fields[0]}=... (keys: {', '.join(fields)})"
        )
    if isinstance(exc, ValidationError) and key != "?":
        expected = _expected_words(_field_type(str(key)))
        found = re.match(r"Value '(.*?)' (of type|is not|could not)", first)
        value = raw if raw is not None and key == key_hint else found and found.group(1)
        if expected and value is not None:
            return ConfigError(
                f"bad value for config key '{key}' ({where}): {value!r} is not {expected}"
            )
        return ConfigError(f"bad value for config key '{key}' ({where}): {first}")
    return ConfigError(f"config error at '{key}' ({where}): {first}")


def _fields_at(dotted: str) -> list[str]:
    cls: Any = TrainConfig
    for part in filter(None, dotted.split(".")):
        hit = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if hit is None or not dataclasses.is_dataclass(hit.default_factory()):  # type: ignore[misc]
            return []
        cls = type(hit.default_factory())  # type: ignore[misc]
    return [f.name for f in dataclasses.fields(cls)]


def _is_section(dotted: str) -> bool:
    """Whether ``dotted`` names a group of keys (a dataclass such as ``data.augment``)."""
    typ = _field_type(dotted)
    return isinstance(typ, type) and dataclasses.is_dataclass(typ)


def _field_type(dotted: str) -> Any:
    """The annotated type of a schema key (``trainer.max_epochs`` -> int), None if not one."""
    cls: Any = TrainConfig
    typ: Any = None
    for part in dotted.split("."):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return None
        typ = typing.get_type_hints(cls).get(part)
        if typ is None:
            return None
        cls = typ
    return typ


def _expected_words(typ: Any) -> str | None:
    """``int | None`` -> 'an integer or null': what a value of this type looks like."""
    if typ is None or typ is Any:
        return None
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        parts = [_expected_words(a) for a in args if a is not type(None)]
        if any(p is None for p in parts):
            return None
        if set(args) - {type(None)} == {int, float}:
            parts = ["a number"]
        words = " or ".join(p for p in parts if p)
        if type(None) in args:
            words = "true, false or null" if words == "true or false" else f"{words} or null"
        return words
    if origin in (list, tuple):
        inner = typing.get_args(typ)
        item = _expected_words(inner[0]) if inner else None
        return f"a list ({item} each)" if item else "a list"
    if origin is dict:
        return "a mapping of keys to values"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(typ)


def _merge(
    base: DictConfig, layer: Any, where: str, key: str | None = None, raw: str | None = None
) -> DictConfig:
    try:
        merged = OmegaConf.merge(base, layer)
    except (OmegaConfBaseException, TypeError, ValueError) as exc:
        # TypeError: OmegaConf's "Cannot merge incompatible container types", user input too.
        raise _describe(exc, where, key, raw) from exc
    assert isinstance(merged, DictConfig)
    return merged


def validate(cfg: DictConfig, where: str = "") -> None:
    """Every check a composed or loaded config must pass before anything runs."""
    _check_choices(cfg)
    _check_trainer(cfg)
    _check_adversarial(cfg)
    check_hardware(cfg, where)
    _check_resolves(cfg)


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


def _check_trainer(cfg: DictConfig) -> None:
    """Device counts Lightning would refuse only after the data is loaded."""
    devices = cfg.trainer.devices
    if isinstance(devices, int) and not (devices >= 1 or devices == -1):
        raise ConfigError(
            f"bad value for config key 'trainer.devices': {devices}; expected a count >= 1, "
            "-1 (all), 'auto' or a list of device indices such as '0,1'"
        )
    if isinstance(devices, str) and not re.fullmatch(r"auto|-1|\d+|(\d+,)+\d*", devices.strip()):
        raise ConfigError(
            f"bad value for config key 'trainer.devices': {devices!r}; expected a count >= 1, "
            "-1 (all), 'auto' or a list of device indices such as '0,1'"
        )
    if cfg.trainer.num_nodes < 1:
        raise ConfigError(
            f"bad value for config key 'trainer.num_nodes': {cfg.trainer.num_nodes}; it must be "
            ">= 1"
        )


def _check_adversarial(cfg: DictConfig) -> None:
    """ε, α and steps of adversarial training: in range, and steps only where they apply."""
    adv = cfg.adversarial
    if not 0 < adv.eps <= 255:
        raise ConfigError(
            f"bad value for config key 'adversarial.eps': {adv.eps}; expected a radius in "
            "(0, 255] in 1/255 of the pixel range (8 is 8/255)"
        )
    if adv.alpha is not None and not adv.alpha > 0:
        raise ConfigError(
            f"bad value for config key 'adversarial.alpha': {adv.alpha}; expected a step size "
            "> 0 in 1/255 of the pixel range, or null for the attack's own rule"
        )
    if adv.steps is not None:
        if adv.attack != "pgd":
            raise ConfigError(
                f"config key 'adversarial.steps' is {adv.steps} but adversarial.attack is "
                f"{adv.attack!r}, which takes one step; steps apply to adversarial.attack=pgd"
            )
        if adv.steps < 1:
            raise ConfigError(
                f"bad value for config key 'adversarial.steps': {adv.steps}; expected an "
                "integer >= 1"
            )


def check_hardware(cfg: DictConfig, where: str = "") -> None:
    """Stop before training when the config asks for an accelerator this machine does not have."""
    accelerator = str(cfg.trainer.accelerator).lower()
    if accelerator not in ("gpu", "cuda", "mps"):
        return
    import torch

    source = f" ({where})" if where else ""
    if accelerator == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(
                f"config key 'trainer.accelerator' is 'mps'{source} but no Apple GPU (MPS) is "
                "available here; use trainer.accelerator=cpu or trainer.accelerator=auto"
            )
        return
    if not torch.cuda.is_available():
        raise ConfigError(
            f"config key 'trainer.accelerator' is {accelerator!r}{source} but no CUDA GPU is "
            "available here; use trainer.accelerator=cpu or trainer.accelerator=auto (which "
            "picks a GPU when there is one)"
        )
    devices, count = cfg.trainer.devices, torch.cuda.device_count()
    if isinstance(devices, int) and devices > count:
        raise ConfigError(
            f"config key 'trainer.devices' asks for {devices} GPUs{source} but this machine has "
            f"{count}; use trainer.devices={count} or trainer.devices=auto"
        )


def _check_resolves(cfg: DictConfig) -> None:
    """Interpolations such as ``name=${model.name}-x`` must point at existing keys."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"config key '{key}' cannot be resolved: {first}") from exc


def _check_model_options(cfg: DictConfig) -> None:
    """``model.name`` must be a registered model and ``model.options`` options it takes, each of
    the type of the builder's default (checked before any run starts)."""
    from realfake.models import COMMON_OPTIONS, ModelError, own_options

    try:
        accepted = own_options(cfg.model.name)
    except ModelError as exc:
        raise ConfigError(f"bad value for config key 'model.name': {exc}") from exc
    options = dict(cfg.model.options or {})
    own = {f.name for f in dataclasses.fields(ModelConfig)}
    for key, value in options.items():
        if key in own or key in COMMON_OPTIONS:
            where = f"model.{key}" if key in own else "the data (data.image_size, RGB input)"
            raise ConfigError(f"config key 'model.options.{key}' is set by {where}, not here")
        if key not in accepted:
            raise ConfigError(
                f"unknown config key 'model.options.{key}': model {cfg.model.name!r} takes "
                f"{', '.join(sorted(accepted)) if accepted else 'no further options'}"
            )
        checked = _option_value(f"model.options.{key}", value, accepted[key], cfg.model.name)
        if checked is not value:
            cfg.model.options[key] = checked


def _option_value(key: str, value: Any, default: Any, model: str) -> Any:
    """``value`` as the type of the builder's default (bool, int, float, str; else unchecked)."""
    if default is None or default is inspect.Parameter.empty:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (int, str)) else None
        if text in _BOOL_TEXT:
            return _BOOL_TEXT[text]
        expected = "true or false"
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "an integer"
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        expected = "a number"
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        expected = "a string"
    else:
        return value
    shown = OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
    raise ConfigError(
        f"bad value for config key '{key}': {shown!r} is not {expected} (model {model!r} takes "
        f"{key.rpartition('.')[2]} as {expected}, default {default!r})"
    )


def compose(
    overrides: list[str] | tuple[str, ...] = (), base: DictConfig | None = None
) -> DictConfig:
    """Build a validated config from ``experiment=``/group choices and dotted overrides."""
    cfg = base if base is not None else OmegaConf.structured(TrainConfig)
    choices: list[tuple[str, str]] = []
    dotted: list[tuple[str, str]] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key = key.strip()
        if key == "experiment" or key in GROUPS:
            choices.append((key, value.strip()))
        elif not _KEY.fullmatch(key):
            raise ConfigError(
                f"override '{item}': {key!r} is not a config key; keys are dotted names such as "
                "trainer.max_epochs (a list is set whole, e.g. optim.betas=[0.9,0.999])"
            )
        else:
            dotted.append((key, value))
    # The experiment comes first so that explicit group choices and overrides win over it.
    choices.sort(key=lambda kv: kv[0] != "experiment")
    overridden = {key for key, _ in dotted}
    for group, name in choices:
        cfg = _choose(cfg, group, name, overridden)
    for key, value in dotted:
        try:
            layer = OmegaConf.from_dotlist([f"{key}={value}"])
        except Exception as exc:  # YAML parse errors of the value come in several types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"could not parse the value of config key '{key}' (command line): {value!r} "
                f"({first})"
            ) from exc
        cfg = _merge(cfg, _data_locations(layer, "command line"), "command line", key, value)
    _check_bool_texts(cfg, dotted)
    validate(cfg)
    return cfg


def _choose(cfg: DictConfig, group: str, name: str, overridden: Collection[str] = ()) -> DictConfig:
    """Apply ``GROUP=NAME``: its YAML file, or for ``model`` any registered model's name.

    ``experiment=`` also takes a path to a YAML file (a sweep's ``best.yaml``, say): a name
    ending in .yaml/.yml or holding a path separator is read as one. ``overridden``: the keys
    the command line sets afterwards (their data locations are not looked up).
    """
    if group == "experiment" and (name.endswith((".yaml", ".yml")) or "/" in name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"experiment file {path} does not exist (experiment={name})")
        layer = _data_locations(_read_yaml(path), f"from {path}", overridden)
        return _merge(cfg, layer, f"from {path}")
    known = available(group)
    if name in known:
        path = config_dir() / group / f"{name}.yaml"
        layer = _read_yaml(path)
        if group != "experiment":
            layer = OmegaConf.create({group: layer})
        layer = _data_locations(layer, f"from {path}", overridden)
        return _merge(cfg, layer, f"from {path.name}")
    if group == "model":
        from realfake.models import list_models

        models = list_models()
        if name in models:  # no file needed: model=NAME sets model.name
            return _merge(cfg, OmegaConf.create({"model": {"name": name}}), "command line")
        close = difflib.get_close_matches(name, sorted({*models, *known}), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ";"
        raise ConfigError(
            f"no model named {name!r} (model={name}){hint} registered models: {', '.join(models)}"
        )
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ";"
    raise ConfigError(
        f"no {group} config named {name!r} ({group}={name}){hint} available: "
        f"{', '.join(known) or 'none (set single keys instead, e.g. ' + _example(group) + ')'}"
    )


def _example(group: str) -> str:
    fields = _fields_at(group)
    return f"{group}.{fields[0]}=..." if fields else f"{group}.KEY=VALUE"


def _check_bool_texts(cfg: DictConfig, dotted: list[tuple[str, str]]) -> None:
    """Booleans on the command line are true/false (or 1/0), never YAML's yes/no/on/off."""
    for key, raw in dotted:
        text = raw.strip().lower()
        if key.startswith("model.options.") and key.count(".") == 2:
            from realfake.models import ModelError, model_options

            try:
                default = model_options(cfg.model.name).get(key.rpartition(".")[2])
            except ModelError:
                continue  # validate() names the unknown model
            if isinstance(default, bool) and text not in _BOOL_TEXT:
                raise ConfigError(
                    f"bad value for config key '{key}' (command line): {raw!r} is not true or "
                    f"false (model {cfg.model.name!r} takes {key.rpartition('.')[2]} as true or "
                    f"false, default {default!r})"
                )
            continue
        typ = _field_type(key)
        args = set(typing.get_args(typ)) if typing.get_origin(typ) else {typ}
        if bool in args and args <= {bool, type(None)}:
            allowed = {*_BOOL_TEXT, "null"} if type(None) in args else set(_BOOL_TEXT)
            if text not in allowed:
                raise ConfigError(
                    f"bad value for config key '{key}' (command line): {raw!r} is not "
                    f"{_expected_words(typ)}"
                )


def load_file(path: str | Path) -> DictConfig:
    """Load a saved ``config.yaml`` (for instance from a run directory) onto the schema."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    layer = _data_locations(_read_yaml(path), f"from {path}")
    cfg = _merge(OmegaConf.structured(TrainConfig), layer, f"from {path}")
    validate(cfg, f"from {path}")
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
