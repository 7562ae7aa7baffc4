"""Studies and comparisons: a 2-arm study trains, evaluates and tabulates; collect mode reuses."""

from __future__ import annotations

import pandas as pd
import pytest

from realfake.errors import ConfigError
from realfake.studies.comparison import compare
from realfake.studies.study import Study, arm_configs, available_studies, load_study, run_study

TABLE_HEADERS = (
    "val loss",
    "val acc",
    "test loss",
    "test acc",
    "test acc (arg-max)",
    "precision",
    "recall",
    "F1",
    "params (M)",
    "MACs (G)",
    "train time (s)",
    "images/s",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_cache, tiny_overrides):
    """Two arms × 1 epoch of 2 batches, trained and compared once for the module."""
    arms = {"plain": ["model.dropout=0.0"], "dropout": ["model.dropout=0.5"]}
    root = tmp_path_factory.mktemp("studies")
    return run_study(
        Study("tiny", arms, common=tiny_overrides),
        overrides=["data.batch_size=16", "trainer.max_epochs=1"],
        out_root=root,
    )


@pytest.mark.slow  # trains two runs
def test_study_writes_one_table_with_every_arm(study):
    assert study.out_dir.name.startswith("tiny-")
    for name in ("table.md", "table.csv", "table.html", "curves.png", "runs.csv"):
        assert (study.out_dir / name).stat().st_size > 0, name
    table = pd.read_csv(study.out_dir / "table.csv")
    assert list(table["arm"]) == ["plain", "dropout"]
    assert (table["seeds"] == 1).all()
    for column in (
        "val_loss",
        "val_acc",
        "test_loss",
        "test_acc",
        "test_acc_argmax",
        "precision",
        "recall",
        "f1",
        "params_m",
        "macs_g",
        "train_time_s",
        "images_per_s",
    ):
        assert table[f"{column}_mean"].notna().all(), column
    # fastnet at 32 px: ~1.6 M parameters and ~0.1 GMACs, the same in both arms.
    assert table["params_m_mean"].round(2).tolist() == [1.64, 1.64]
    md = (study.out_dir / "table.md").read_text()
    assert all(h in md for h in TABLE_HEADERS) and "| plain |" in md and "| dropout |" in md
    runs = pd.read_csv(study.out_dir / "runs.csv")
    assert list(runs["run"]) == ["plain-s0", "dropout-s0"]


@pytest.mark.slow
def test_collect_mode_tabulates_finished_runs(study, tmp_path):
    runs = pd.read_csv(study.out_dir / "runs.csv")["path"].tolist()
    collected = compare(runs, tmp_path / "cmp")
    table = pd.read_csv(tmp_path / "cmp" / "table.csv")
    assert list(table["arm"]) == ["plain-s0", "dropout-s0"]
    # The test figures come from each run's metrics.json, written by the study's evaluation.
    assert collected.runs["test_acc"].tolist() == study.runs["test_acc"].tolist()
    assert (tmp_path / "cmp" / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_seeds_become_mean_and_std(study, tmp_path):
    runs = pd.read_csv(study.out_dir / "runs.csv")["path"].tolist()
    pooled = compare(runs, tmp_path / "pooled", arms=["same", "same"])
    row = pooled.table.iloc[0]
    assert row["seeds"] == 2
    assert row["test_acc_mean"] == pytest.approx(study.runs["test_acc"].mean())
    assert "±" in (tmp_path / "pooled" / "table.md").read_text()


def test_shipped_studies_compose_and_keep_a_small_budget():
    assert {"architectures", "regularisation"} <= set(available_studies())
    archs = load_study("architectures")
    assert list(archs.arms) == ["vgg16", "resnet18", "resnext29_2x64d"]
    configs = arm_configs(archs, seeds=2, overrides=["trainer.max_epochs=7"])
    assert [c.name for _, c in configs][:2] == ["vgg16-s0", "vgg16-s1"]
    assert {c.model.name for _, c in configs} == set(archs.arms)
    assert all(c.trainer.max_epochs == 7 for _, c in configs)  # the caller's override wins
    for name in ("architectures", "regularisation"):
        for _, cfg in arm_configs(load_study(name)):
            assert cfg.trainer.max_epochs <= 5, name  # minutes on a CPU, not hours


def test_bad_study_input_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="available: architectures"):
        load_study("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("arms:\n  a: model=vgg16\n")
    with pytest.raises(ConfigError, match="list of KEY=VALUE"):
        load_study(bad)
    with pytest.raises(ConfigError, match="unknown config key"):
        arm_configs(Study("x", {"a": ["trainer.max_epoch=1"]}))


def test_cli_rejects_mixed_or_misplaced_arguments(capsys):
    from realfake.cli import main

    assert main(["compare", "study=architectures", "runs/a"]) == 2
    assert main(["compare", "runs/a", "trainer.max_epochs=3"]) == 2
    assert "only apply to a study" in capsys.readouterr().err
