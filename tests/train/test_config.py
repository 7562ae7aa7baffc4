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


@pytest.mark.parametrize(
    "group,name", [(g, n) for g in C.GROUPS for n in C.available(g)], ids=lambda v: str(v)
)
def test_every_group_file_composes(group, name):
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
    with pytest.raises(ConfigError, match=r"model\.options\.width.*'resnet18' takes no further"):
        C.compose(["model=resnet18", "model.options.width=16"])
    with pytest.raises(ConfigError, match=r"model\.options\.dropout.*model\.dropout"):
        C.compose(["model.options.dropout=0.5"])
    with pytest.raises(ConfigError, match=r"model\.options\.image_size.*set by the data"):
        C.compose(["model.options.image_size=64"])
    with pytest.raises(ConfigError, match=r"model\.options\.depth.*'fastnet' takes pool, width"):
        C.compose(["model.options.depth=3"])
