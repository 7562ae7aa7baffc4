"""Config composition: experiments and groups overlay the dataclass defaults; mistakes are named."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from realfake.errors import ConfigError
from realfake.train import config as C


def test_defaults_compose_to_dataclasses():
    cfg = C.to_object(C.compose())
    assert isinstance(cfg, C.TrainConfig)
    assert cfg.data.image_size == 32
    assert cfg.data.source is None  # the embedded sample


def test_experiment_then_group_then_dotted_override_win_in_order():
    cfg = C.compose(
        ["experiment=cifake_resnext29", "optim=sgd", "optim.lr=0.003", "trainer.max_epochs=3"]
    )
    assert cfg.model.name == "resnext29_2x64d"  # from the experiment
    assert cfg.optim.name == "sgd"  # the group file beats the experiment's adam
    assert cfg.optim.lr == pytest.approx(0.003)  # the dotted override beats the group file
    assert cfg.trainer.max_epochs == 3


@pytest.mark.parametrize("name", C.available("experiment"))
def test_every_shipped_experiment_composes(name):
    cfg = C.to_object(C.compose([f"experiment={name}"]))
    assert cfg.trainer.max_epochs > 0


@pytest.fixture
def data_folder(tmp_path):
    """A folder of data sets as REALFAKE_DATA names one: cifake-sample/{train,test}.tar and
    faces-256/train.tar."""
    root = tmp_path / "datasets"
    for name in ("cifake-sample/train.tar", "cifake-sample/test.tar", "faces-256/train.tar"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # composing a config opens no file
    return root


@pytest.mark.parametrize(
    "group,name", [(g, n) for g in C.GROUPS for n in C.available(g)], ids=lambda v: str(v)
)
def test_every_group_file_composes(group, name, monkeypatch, data_folder):
    import torch

    monkeypatch.setenv("REALFAKE_DATA", str(data_folder))  # data=cifake_sample names files in it
    # trainer=gpu asks for a GPU: compose it as on a machine that has one.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    C.compose([f"{group}={name}"])


def test_misspelt_key_names_the_key_and_suggests():
    with pytest.raises(ConfigError) as err:
        C.compose(["optim.lrr=0.1"])
    msg = str(err.value)
    assert "optim.lrr" in msg
    assert "did you mean lr" in msg
    assert "weight_decay" in msg  # the allowed keys are listed


def test_misspelt_key_in_yaml_names_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("trainer:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"trainer\.max_epoch"):
        C.load_file(path)


def test_wrong_type_is_rejected_with_key():
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs"):
        C.compose(["trainer.max_epochs=many"])


def test_value_outside_choices_lists_allowed_values():
    with pytest.raises(ConfigError) as err:
        C.compose(["optim.name=rmsprop"])
    assert "optim.name" in str(err.value)
    assert "adamw" in str(err.value)


def test_unknown_experiment_lists_available():
    with pytest.raises(ConfigError, match="cifake_resnext29"):
        C.compose(["experiment=nope"])


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        C.compose(["trainer.max_epochs"])


def test_saved_yaml_round_trips(tmp_path):
    cfg = C.compose(["experiment=resnet18_regularised", "seed=7"])
    path = tmp_path / "config.yaml"
    path.write_text(C.to_yaml(cfg))
    again = C.load_file(path)
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)


def test_model_options_reach_the_model_and_unknown_ones_are_named() -> None:
    from realfake.runs import ModelSpec
    from realfake.train.config import to_dict

    def params(overrides: list[str]) -> int:
        cfg = to_dict(C.compose(overrides))
        spec = ModelSpec.from_training_config(cfg, ["FAKE", "REAL"], [0.5] * 3, [0.25] * 3)
        return sum(p.numel() for p in spec.build_model().parameters())

    assert params(["model.options.width=16"]) < params([]) / 3  # fastnet's width multiplier
    with pytest.raises(ConfigError, match=r"model\.options\.width.*'resnet18' takes input_tr"):
        C.compose(["model=resnet18", "model.options.width=16"])
    with pytest.raises(ConfigError, match=r"model\.options\.dropout.*model\.dropout"):
        C.compose(["model.options.dropout=0.5"])
    with pytest.raises(ConfigError, match=r"model\.options\.image_size.*set by the data"):
        C.compose(["model.options.image_size=64"])
    with pytest.raises(ConfigError, match=r"depth.*'fastnet' takes input_transform, pool, whiten"):
        C.compose(["model.options.depth=3"])


# --- strict values: one sentence naming the key and what would fit ---------------------------


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("trainer.max_epochs=abc", "'trainer.max_epochs' (command line): 'abc' is not an integer"),
        ("trainer.max_epochs=1.5", "'1.5' is not an integer"),
        ("optim.lr=fast", "'optim.lr' (command line): 'fast' is not a number"),
        ("trainer.gradient_clip_val=x", "'x' is not a number or null"),
        ("data.augment.flip=maybe", "'data.augment.flip' (command line): 'maybe' is not true or"),
        ("data.augment.flip=yes", "'yes' is not true or false"),  # YAML 1.1 words refused
        ("trainer.channels_last=on", "'on' is not true, false or null"),
        ("optim.betas=abc", "'optim.betas' (command line): 'abc' is not a list"),
        ("data.augment=x", "'data.augment' (command line) is a section, not a value"),
        ("model.options=abc", "'model.options' (command line): 'abc' is not a mapping"),
        ("trainer..x=1", "'trainer..x' is not a config key"),
        ("optim.betas.0=0.8", "a list is set whole"),
        ("optim.betas=[0.9,", "could not parse the value of config key 'optim.betas'"),
        ("name=${nowhere}", "config key 'name' cannot be resolved"),
        ("trainer.devices=0", "'trainer.devices': 0; expected a count >= 1"),
        ("trainer.devices=many", "'trainer.devices': 'many'"),
        ("trainer.accelerator=gpux", "'trainer.accelerator': 'gpux'; allowed: auto, cpu, gpu"),
        (
            "data.augment={crop_padding: x}",
            "'data.augment.crop_padding' (command line): 'x' is not",
        ),
    ],
)
def test_bad_values_name_the_key_and_the_expected_type(override, fragment):
    with pytest.raises(ConfigError) as err:
        C.compose([override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "override,value",
    [
        ("data.augment.flip=TRUE", True),
        ("data.augment.flip=False", False),
        ("data.augment.flip=0", False),
        ("trainer.channels_last=null", None),
    ],
)
def test_booleans_accept_true_false_and_1_0(override, value):
    key = override.partition("=")[0]
    assert OmegaConf.select(C.compose([override]), key) is value


def test_model_options_are_checked_against_the_builders_defaults():
    with pytest.raises(ConfigError) as err:
        C.compose(["model.options.width=abc"])
    assert str(err.value) == (
        "bad value for config key 'model.options.width': 'abc' is not an integer "
        "(model 'fastnet' takes width as an integer, default 32)"
    )
    with pytest.raises(ConfigError, match=r"model\.options\.width.*4\.5 is not an integer"):
        C.compose(["model.options.width=4.5"])
    with pytest.raises(ConfigError, match=r"model\.options\.pool.*1 is not a string"):
        C.compose(["model.options.pool=1"])
    for bad in ("maybe", "yes", "2", "1.0"):
        with pytest.raises(ConfigError, match=rf"model\.options\.batch_norm.*'{bad}' is not true"):
            C.compose(["model=vgg16", f"model.options.batch_norm={bad}"])
    for text, value in (("false", False), ("TRUE", True), ("0", False), ("1", True)):
        cfg = C.compose(["model=vgg16", f"model.options.batch_norm={text}"])
        assert cfg.model.options.batch_norm is value  # 1/0 become booleans
    assert C.compose(["model.options.width=48"]).model.options.width == 48


def test_model_options_in_a_yaml_file_are_type_checked(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model:\n  name: vgg11\n  options:\n    batch_norm: maybe\n")
    with pytest.raises(ConfigError, match=r"model\.options\.batch_norm.*'maybe' is not true"):
        C.load_file(path)


# --- group choices ----------------------------------------------------------------------


def test_model_choice_takes_any_registered_model_without_a_file():
    assert "resnet34" not in C.available("model")
    cfg = C.compose(["model=resnet34"])
    assert cfg.model.name == "resnet34"
    assert C.compose(["model=vgg16"]).model.name == "vgg16"  # a file still wins


def test_unknown_model_lists_the_registered_ones_with_a_hint():
    from realfake.models import list_models

    with pytest.raises(ConfigError) as err:
        C.compose(["model=resnet35"])
    msg = str(err.value)
    assert msg.startswith("no model named 'resnet35' (model=resnet35); did you mean ")
    assert "resnet34" in msg.split("?")[0]
    assert msg.endswith(", ".join(list_models()))
    with pytest.raises(ConfigError, match=r"'model\.name': unknown model 'resnet35'"):
        C.compose(["model.name=resnet35"])  # checked even without model.options


def test_unknown_group_file_lists_the_files():
    with pytest.raises(ConfigError) as err:
        C.compose(["optim=rmsprop"])
    assert (
        str(err.value)
        == "no optim config named 'rmsprop' (optim=rmsprop); available: adam, adamw, sgd"
    )
    with pytest.raises(ConfigError, match=r"early_stopping.*available: none"):
        C.compose(["early_stopping=patient"])
    with pytest.raises(ConfigError, match=r"no sched config named '\.\./model/vgg16'"):
        C.compose(["sched=../model/vgg16"])  # names, not paths


# --- hardware -----------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [["trainer.accelerator=gpu"], ["trainer.accelerator=cuda"],
                                       ["trainer=gpu"]], ids=str)  # fmt: skip
def test_gpu_config_without_a_gpu_stops_before_training(overrides, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        C.compose(overrides)
    msg = str(err.value)
    assert "config key 'trainer.accelerator'" in msg
    assert "no CUDA GPU is available here" in msg
    assert "trainer.accelerator=cpu" in msg and "trainer.accelerator=auto" in msg


def test_gpu_config_with_a_gpu_checks_the_device_count(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert C.compose(["trainer=gpu"]).trainer.accelerator == "gpu"
    with pytest.raises(
        ConfigError, match=r"'trainer\.devices' asks for 4 GPUs but this machine has 1"
    ):
        C.compose(["trainer.accelerator=gpu", "trainer.devices=4"])


def test_saved_gpu_config_names_its_file_on_a_cpu_machine(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = tmp_path / "config.yaml"
    path.write_text("trainer:\n  accelerator: gpu\n")
    with pytest.raises(ConfigError, match=rf"'gpu' \(from {path}\) but no CUDA GPU"):
        C.load_file(path)


def test_wrong_type_in_a_yaml_file_names_the_file_and_the_type(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("trainer:\n  max_epochs: abc\n")
    with pytest.raises(ConfigError) as err:
        C.load_file(path)
    assert str(err.value) == (
        f"bad value for config key 'trainer.max_epochs' (from {path}): 'abc' is not an integer"
    )


def test_data_location_comes_from_realfake_data_not_the_working_directory(
    tmp_path, monkeypatch, data_folder
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("REALFAKE_DATA", "../datasets")  # relative: to the folder it is read in
    cfg = C.compose(["data=cifake_sample"])
    assert cfg.data.source == str(data_folder / "cifake-sample" / "train.tar")
    assert cfg.data.test_source == str(data_folder / "cifake-sample" / "test.tar")
    # The resolved config is what a run saves: absolute paths, nothing left to resolve.
    saved = tmp_path / "config.yaml"
    saved.write_text(C.to_yaml(cfg))
    monkeypatch.delenv("REALFAKE_DATA")
    monkeypatch.chdir(tmp_path)
    assert C.load_file(saved).data.source == cfg.data.source


def test_unset_realfake_data_names_the_variable_the_file_and_the_path(monkeypatch):
    monkeypatch.delenv("REALFAKE_DATA", raising=False)
    with pytest.raises(ConfigError) as err:
        C.compose(["data=cifake_sample"])
    msg = str(err.value)
    assert "environment variable REALFAKE_DATA is not set" in msg
    assert str(C.config_dir() / "data" / "cifake_sample.yaml") in msg
    assert "$REALFAKE_DATA/cifake-sample/train.tar" in msg
    assert "data.source=PATH" in msg  # and how to do without it


def test_missing_data_file_names_the_path_it_expected(tmp_path, monkeypatch):
    monkeypatch.setenv("REALFAKE_DATA", str(tmp_path))
    expected = tmp_path / "cifake-sample" / "train.tar"
    with pytest.raises(ConfigError, match=rf"{expected} does not exist \(REALFAKE_DATA="):
        C.compose(["data=cifake_sample"])


def test_command_line_data_source_overrides_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("REALFAKE_DATA", raising=False)
    train, test = tmp_path / "mine.zip", tmp_path / "test.zip"
    cfg = C.compose(["data=cifake_sample", f"data.source={train}", f"data.test_source={test}"])
    assert (cfg.data.source, cfg.data.test_source) == (str(train), str(test))
    assert cfg.data.val_fraction == 0.05  # the rest of the file still applies
    monkeypatch.setenv("REALFAKE_DATA", str(tmp_path))  # and $REALFAKE_DATA works there too
    (tmp_path / "other.tar").write_bytes(b"")
    cfg = C.compose(["data.source=$REALFAKE_DATA/other.tar"])
    assert cfg.data.source == str(tmp_path / "other.tar")


def test_no_shipped_config_names_a_path_relative_to_the_working_directory():
    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for path in sorted(C.config_dir().rglob("*.yaml")):
        for text in strings(OmegaConf.to_container(OmegaConf.load(path), resolve=False)):
            value = text.partition("=")[2] if "=" in text else text  # a study's override
            assert not value.startswith(("./", "../")) and "/../" not in value, (path, text)
