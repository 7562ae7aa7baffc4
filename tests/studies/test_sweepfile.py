"""Sweep files (ours and W&B's), their checks before any trial, and the sweep's bookkeeping.

No training here: trials are drawn by Optuna in memory, the pruning callback sees a stand-in
trainer, and errors must stop before a run starts.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import statistics
from types import SimpleNamespace

import optuna
import pytest

from realfake.cli import main
from realfake.errors import ConfigError
from realfake.studies.sweep import (
    PruningCallback,
    best_of_history,
    count_trials,
    run_sweep,
    write_trials_csv,
)
from realfake.studies.sweepfile import (
    ALIASES,
    PRUNERS,
    SAMPLERS,
    STORAGE_KINDS,
    check_spec,
    load_sweep,
)
from realfake.train import compose

WANDB = """
name: write-up
entity: someone
project: cifake
command: [python, train.py]
method: bayes
metric: {name: val_loss, goal: minimize, target: 0.05}
parameters:
  lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}
  dropout: {distribution: uniform, min: 0.0, max: 0.25}
  architecture: {values: [fastnet, vgg11]}
  optimizer: {value: adamw}
  batch_size: {distribution: q_uniform, min: 16, max: 64, q: 16}
  epochs: {distribution: int_uniform, min: 1, max: 3}
  weight_decay: {distribution: log_uniform, min: -9.2, max: -4.6}
  optim.momentum: {distribution: normal, mu: 0.9, sigma: 0.02}
  trainer.label_smoothing: {distribution: q_log_uniform_values, min: 0.01, max: 0.2, q: 0.01}
  trainer.deterministic: {value: true}
early_terminate: {type: hyperband, min_iter: 1, eta: 3}
run_cap: 7
"""


def _write(tmp_path, text: str, name: str = "sweep.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_wandb_file_maps_names_metric_method_and_early_termination(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="realfake.studies.sweepfile"):
        spec = load_sweep(_write(tmp_path, WANDB))
    assert spec.format == "wandb" and spec.name == "write-up"
    assert (spec.metric, spec.direction, spec.target) == ("val/loss", "minimize", 0.05)
    assert (spec.sampler, spec.pruner, spec.min_resource, spec.reduction_factor) == (
        "tpe",
        "hyperband",
        1,
        3,
    )
    assert spec.trials == 7
    assert set(spec.params) == {
        "optim.lr",
        "model.dropout",
        "model.name",
        "optim.name",
        "data.batch_size",
        "trainer.max_epochs",
        "optim.weight_decay",
        "optim.momentum",
        "trainer.label_smoothing",
        "trainer.deterministic",
    }
    # The cloud-only keys are named in exactly one line.
    lines = [r.getMessage() for r in caplog.records if "ignoring W&B" in r.getMessage()]
    assert len(lines) == 1 and all(k in lines[0] for k in ("entity", "project", "command"))
    check_spec(spec)  # every key and type composes


def test_wandb_distributions_draw_what_wandb_draws(tmp_path):
    spec = load_sweep(_write(tmp_path, WANDB))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn: list[dict] = []

    def objective(trial):
        drawn.append({k: p.suggest(trial) for k, p in spec.params.items()})
        return 0.0

    study.optimize(objective, n_trials=300)
    col = {k: [d[k] for d in drawn] for k in spec.params}
    assert all(1e-4 <= v <= 1e-2 for v in col["optim.lr"])
    assert all(0.0 <= v <= 0.25 for v in col["model.dropout"])
    assert set(col["model.name"]) == {"fastnet", "vgg11"}
    assert set(col["optim.name"]) == {"adamw"}
    # q_uniform with a whole q: whole multiples of q (an integer key accepts them).
    assert set(col["data.batch_size"]) <= {16, 32, 48, 64}
    assert all(isinstance(v, int) for v in col["data.batch_size"])
    assert set(col["trainer.max_epochs"]) == {1, 2, 3}
    # log_uniform: min and max are natural logarithms of the bounds.
    assert all(
        math.exp(-9.2) * 0.999 <= v <= math.exp(-4.6) * 1.001 for v in col["optim.weight_decay"]
    )
    # normal: N(0.9, 0.02) under random search.
    assert abs(statistics.mean(col["optim.momentum"]) - 0.9) < 0.005
    assert 0.015 < statistics.stdev(col["optim.momentum"]) < 0.025
    # q_log_uniform_values: multiples of 0.01 within the range.
    assert all(abs(v * 100 - round(v * 100)) < 1e-9 for v in col["trainer.label_smoothing"])
    assert all(0.01 <= v <= 0.2 for v in col["trainer.label_smoothing"])


def test_our_format_with_common_overrides_and_shorthands(tmp_path):
    spec = load_sweep(
        _write(
            tmp_path,
            """
description: d
metric: val/acc
sampler: random
pruner: {type: median}
trials: 5
common: [trainer.max_epochs=2]
params:
  optim.lr: {type: float, low: 0.01, high: 0.2, log: true}
  data.batch_size: {type: int, low: 32, high: 96, step: 32}
  model.name: [fastnet, vgg11]
  trainer.deterministic: true
""",
        )
    )
    assert (spec.metric, spec.direction, spec.sampler, spec.pruner, spec.trials) == (
        "val/acc",
        "maximize",
        "random",
        "median",
        5,
    )
    assert spec.overrides == ["trainer.max_epochs=2"]
    assert spec.params["data.batch_size"].grid() == [32, 64, 96]
    assert spec.params["model.name"].kind == "categorical"
    assert spec.params["trainer.deterministic"].kind == "fixed"
    assert check_spec(spec).trainer.max_epochs == 2


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ("learningrate: {values: [0.1]}", ["unknown parameter 'learningrate'", "lr -> optim.lr"]),
        ("optim.lrr: {values: [0.1]}", ["'optim.lrr'", "unknown config key"]),
        (
            "batch_size: {distribution: uniform, min: 16.0, max: 64.0}",
            ["batch_size", "data.batch_size", "not an integer"],
        ),
        ("lr: {distribution: uniform, min: 0.1, max: 0.1}", ["lr", "empty range"]),
        ("dropout: {distribution: beta, min: 0, max: 1}", ["beta", "not supported"]),
        ("optimizer: {values: [sgd, lion]}", ["optim.name", "lion"]),
    ],
)
def test_a_bad_parameter_stops_before_any_trial_naming_it(tmp_path, parameters, expected):
    path = _write(tmp_path, f"method: random\nparameters:\n  {parameters}\n")
    with pytest.raises(ConfigError) as err:
        check_spec(load_sweep(path))
    for word in expected:
        assert word in str(err.value)


def test_grid_needs_finite_values_and_unknown_keys_are_named(tmp_path):
    grid = "method: grid\nparameters:\n  lr: {distribution: uniform, min: 0.01, max: 0.1}\n"
    with pytest.raises(ConfigError, match=r"grid search needs a finite set.*'lr'"):
        check_spec(load_sweep(_write(tmp_path, grid)))
    typo = "method: bayes\nmetrik: {name: val/loss}\nparameters:\n  lr: {value: 0.1}\n"
    with pytest.raises(ConfigError, match=r"unknown key.*metrik"):
        load_sweep(_write(tmp_path, typo, "typo.yaml"))
    metric = "method: bayes\nmetric: {name: f1}\nparameters:\n  lr: {value: 0.1}\n"
    with pytest.raises(ConfigError, match=r"unknown metric 'f1'.*val_loss -> val/loss"):
        load_sweep(_write(tmp_path, metric, "metric.yaml"))


def test_aliases_are_config_keys():
    for alias, key in ALIASES.items():
        value = {"model.name": "fastnet", "optim.name": "sgd", "data.batch_size": 32}.get(key)
        value = value if value is not None else (2 if key == "trainer.max_epochs" else 0.1)
        assert compose([f"{key}={value}"]) is not None, alias


def test_shipped_sweeps_load_and_check(tmp_path, monkeypatch):
    # cifake_fast composes data=cifake_sample, which names files under $REALFAKE_DATA.
    (tmp_path / "cifake-sample").mkdir()
    for split in ("train", "test"):
        (tmp_path / "cifake-sample" / f"{split}.tar").touch()
    monkeypatch.setenv("REALFAKE_DATA", str(tmp_path))
    for name in ("demo", "cifake_fast"):
        spec = load_sweep(name)
        check_spec(spec)
        assert spec.params


def test_cli_names_the_bad_parameter_with_exit_code_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, "method: random\nparameters:\n  dropot: {values: [0.1]}\n")
    assert main(["sweep", str(path), "--trials", "2", "trainer.max_epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dropot" in err
    assert not (tmp_path / "sweeps").exists()  # nothing ran, nothing written


def test_experiment_accepts_a_yaml_path(tmp_path):
    path = _write(tmp_path, "optim:\n  lr: 0.0123\n", "best.yaml")
    assert compose([f"experiment={path}"]).optim.lr == 0.0123
    with pytest.raises(ConfigError, match=r"experiment file .*missing.yaml does not exist"):
        compose([f"experiment={tmp_path / 'missing.yaml'}"])


def _trial(state, number_attrs=None, system_attrs=None, value=None):
    return optuna.trial.create_trial(
        state=state,
        value=value if state == optuna.trial.TrialState.COMPLETE else None,
        user_attrs=number_attrs or {},
        system_attrs=system_attrs or {},
    )


def test_every_trial_counts_once():
    S = optuna.trial.TrialState
    study = optuna.create_study()
    for t in [
        _trial(S.COMPLETE, value=1.0),  # 0
        _trial(S.FAIL),  # 1: its worker died, retried as 4
        _trial(S.PRUNED),  # 2
        _trial(S.FAIL, {"surplus": True}),  # 3: started after the total was reached
        _trial(S.COMPLETE, system_attrs={"failed_trial": 1, "retry_history": [1]}, value=2.0),
        _trial(S.FAIL, {"interrupted": True}),  # 5: Ctrl-C
        _trial(S.FAIL, {"fail_reason": "NaN"}),  # 6: a real failure counts
    ]:
        study.add_trial(t)
    trials = study.get_trials()
    assert count_trials(trials) == (4, 0)
    assert count_trials(trials, below=4) == (2, 0)  # 1 counts as retried even seen from 4


def test_pruning_callback_stops_the_fit_and_reports_per_epoch():
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    for v in (0.1, 0.2):  # two earlier trials with low losses at epochs 1-3
        t = study.ask()
        for epoch in (1, 2, 3):
            t.report(v, epoch)
        study.tell(t, v)
    trial = study.ask()
    cb = PruningCallback(trial, "val/loss")
    trainer = SimpleNamespace(
        callback_metrics={"val/loss": 5.0},
        current_epoch=0,
        max_epochs=3,
        should_stop=False,
        sanity_checking=False,
    )
    cb.on_train_epoch_end(trainer, None)
    assert trainer.should_stop and cb.pruned_at == 1
    assert study.trials[-1].intermediate_values == {1: 5.0}
    # Just as bad after its last epoch, a trial completes: pruning it would save nothing.
    last = PruningCallback(study.ask(), "val/loss")
    done = SimpleNamespace(**{**vars(trainer), "current_epoch": 2, "should_stop": False})
    last.on_train_epoch_end(done, None)
    assert not done.should_stop and last.pruned_at is None
    assert last.trial.should_prune()  # the pruner would have pruned it
    nan = SimpleNamespace(
        callback_metrics={"val/loss": float("nan")},
        current_epoch=0,
        max_epochs=3,
        should_stop=False,
        sanity_checking=False,
    )
    cb2 = PruningCallback(study.ask(), "val/loss")
    cb2.on_train_epoch_end(nan, None)
    assert nan.should_stop and cb2.diverged_at == 1 and cb2.pruned_at is None


def test_trial_value_is_the_best_epoch_and_nan_epochs_are_ignored():
    history = [{"val_loss": 0.5, "val_acc": 0.7}, {"val_loss": float("nan"), "val_acc": 0.8}]
    assert best_of_history(history, "val/loss", "minimize") == 0.5
    assert best_of_history(history, "val/acc", "maximize") == 0.8
    assert best_of_history([{"val_loss": float("nan")}], "val/loss", "minimize") is None


# --- one source for the closed sets, integers in trials.csv, fixed settings of a study ----------


@pytest.mark.parametrize(
    ("option", "key", "allowed"),
    [("--sampler", "sampler", SAMPLERS), ("--pruner", "pruner", PRUNERS)],
)
def test_the_command_line_and_the_sweep_file_offer_the_same_choices(
    tmp_path, capsys, option, key, allowed
):
    path = _write(tmp_path, f"{key}: nope\nparams:\n  optim.lr: [0.1]\n")
    with pytest.raises(SystemExit) as stop:
        main(["sweep", str(path), option, "nope"])
    assert stop.value.code == 2
    cli = capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    for message in (cli, str(err.value)):
        offered = re.findall(r"\w+", message.split("nope", 1)[1])
        assert [w for w in offered if w in allowed] == list(allowed), message


def test_a_choice_outside_the_closed_sets_is_refused_naming_the_set(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, "params:\n  optim.lr: [0.1]\n")
    for option, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        with pytest.raises(ConfigError) as err:
            run_sweep(path, **{option: "annealing"})
        assert f"{option} 'annealing'; expected one of {', '.join(allowed)}" in str(err.value)
    assert main(["sweep", str(path), "--storage", "oracle://me:Pa55word@db.example/optuna"]) == 2
    err = capsys.readouterr().err
    assert "oracle://me:***@db.example/optuna" in err and "Pa55word" not in err
    assert all(f"{kind}://" in err for kind in STORAGE_KINDS)
    assert not (tmp_path / "sweeps").exists()  # refused before anything was written


def test_trials_csv_keeps_whole_numbers_whole_where_a_trial_lacks_them(tmp_path):
    S = optuna.trial.TrialState
    width = optuna.distributions.CategoricalDistribution([8, 16])
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            state=S.COMPLETE,
            value=0.5,
            params={"model.options.width": 16},
            distributions={"model.options.width": width},
            user_attrs={"values": {"model.options.width": 16, "optim.lr": 0.1}, "epochs": 3},
        )
    )
    # Cut before its values were drawn: no width, no epochs.
    study.add_trial(_trial(S.FAIL, {"interrupted": True, "fail_reason": "interrupted by SIGINT"}))
    rows = list(csv.DictReader(write_trials_csv(study, tmp_path / "trials.csv").open()))
    assert [(r["model.options.width"], r["epochs"], r["optim.lr"]) for r in rows] == [
        ("16", "3", "0.1"),
        ("", "", ""),
    ]
    assert [r["state"] for r in rows] == ["COMPLETE", "INTERRUPTED"]


INVALID = """
method: grid
parameters:
  architecture: {values: [resnet18]}
  model.options.width: {values: [8]}   # resnet18 takes no width: the trial fails at once
"""


@pytest.mark.slow
def test_a_study_continued_with_other_fixed_settings_is_refused_naming_them(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, INVALID, "invalid.yaml")
    first = ["sweep", str(path), "trainer.max_epochs=2", "data.batch_size=128"]
    assert main([*first, "logging.mlflow=false", "logging.progress=none"]) == 0
    capsys.readouterr()
    # Where runs are tracked may differ, and a default may be left unsaid (128 is the batch
    # size's); what a trial computes may not differ.
    again = ["sweep", str(path), "trainer.max_epochs=3", "seed=5", "logging.mlflow=false"]
    assert main(again) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    named = err.split("give the study's own")[0]
    assert "trainer.max_epochs: 2 -> 3" in named and "seed: 0 -> 5" in named
    assert "batch_size" not in named and "logging" not in named
    study = optuna.load_study(study_name="invalid", storage="sqlite:///sweeps/invalid/study.db")
    assert len(study.trials) == 1  # nothing ran the second time
