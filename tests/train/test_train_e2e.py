"""Real training runs on the embedded CIFAKE sample, on the CPU."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from realfake.inference import Predictor
from realfake.runs import load_checkpoint
from realfake.train import compose, train
from realfake.train import config as C


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_directory_holds_everything_a_report_needs(tiny_training):
    result, seen = tiny_training
    run = result.run_dir
    assert run.name == "tiny" and result.primary
    assert (run / "config.yaml").read_text().startswith("name: tiny")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["data"]["fingerprint"]
    assert manifest["data"]["classes"] == ["FAKE", "REAL"]
    assert manifest["data"]["sizes"] == {"train": 900, "val": 100, "test": 200}
    assert manifest["seed"] == 0 and manifest["world_size"] == 1
    assert manifest["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert {"commit", "dirty"} <= set(manifest["git"])
    assert "started" in manifest and "ended" in manifest
    rows = _rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0", "1"]
    for row in rows:
        for key in ("train_loss", "val_loss", "val_acc", "lr"):
            assert math.isfinite(float(row[key])), key
    # Timings change with the machine's load, so they have their own file: metrics.csv is
    # the same bytes for the same config and seed.
    assert "images_per_s" not in rows[0] and "epoch_time_s" not in rows[0]
    timings = _rows(run / "throughput.csv")
    assert [r["epoch"] for r in timings] == ["0", "1"]
    assert all(float(r["images_per_s"]) > 0 and float(r["epoch_time_s"]) > 0 for r in timings)
    assert result.metrics["images_per_s"] > 0
    # The model spec is in every checkpoint and in the run: enough to predict without the config.
    spec = json.loads((run / "model.json").read_text())
    assert spec["model"] == "fastnet" and spec["classes"] == ["FAKE", "REAL"]
    assert spec["positive_class"] == "FAKE" and spec["flip_tta"] is True
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = load_checkpoint(run / "checkpoints" / name)  # weights_only=True inside
        assert ckpt["model_spec"] == {**spec, "threshold": None}
    assert result.metrics["epochs"] == 2 and result.metrics["test_images"] == 200
    assert (
        result.metrics["test_acc"]
        == json.loads((run / "results.json").read_text())["metrics"]["test_acc"]
    )
    # An extra callback (a sweep's pruner) sees each epoch's validation as recorded.
    assert seen.val_acc == pytest.approx([float(r["val_acc"]) for r in rows])
    # The predictor rebuilds the network from the checkpoint alone.
    predictor = Predictor.load(run)
    assert predictor.classes == ["FAKE", "REAL"] and predictor.positive == 0
    probs = predictor.probabilities(torch.zeros(3, 3, 32, 32, dtype=torch.uint8))
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1)


def test_auto_channels_last_is_a_rule_of_device_and_model_not_a_timing(monkeypatch):
    from realfake.runs import ModelSpec
    from realfake.train import run as run_module

    built = []
    real = ModelSpec.build_model

    def counting(self):  # a timing would build a throw-away model: count them
        built.append(self.model)
        return real(self)

    monkeypatch.setattr(ModelSpec, "build_model", counting)

    def auto(overrides):
        cfg = C.to_object(compose(overrides))
        spec = ModelSpec.from_training_config(
            C.to_dict(cfg), ["FAKE", "REAL"], [0.5] * 3, [0.2] * 3
        )
        return run_module.auto_channels_last(spec, run_module.build_trainer(cfg))

    cpu = ["trainer.accelerator=cpu", "data.batch_size=8"]
    # Measured on CPUs: faster in NHWC for fastnet and the ResNets, slower for VGG.
    assert auto(cpu) is True
    assert auto([*cpu, "model=resnet18"]) is True
    assert auto([*cpu, "model=vgg16"]) is False
    # DDP processes must agree on the parameters' layout: on.
    assert auto(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]) is True
    assert built == []  # nothing was timed


def test_existing_run_name_refuses_to_overwrite(tiny_copy, tiny_overrides):
    from realfake.errors import CheckpointError

    again = compose([*tiny_overrides, f"runs_dir={tiny_copy.parent}", "name=tiny"])
    before = (tiny_copy / "checkpoints" / "best.ckpt").read_bytes()
    # A finished run: a new name is the answer; --resume would train nothing.
    with pytest.raises(CheckpointError, match="finished run; choose another name") as caught:
        train(again)
    assert "--resume" not in str(caught.value)
    # An unfinished one can be continued.
    manifest = json.loads((tiny_copy / "manifest.json").read_text())
    (tiny_copy / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    with pytest.raises(CheckpointError, match=r"status interrupted.*--resume"):
        train(again)
    assert (tiny_copy / "checkpoints" / "best.ckpt").read_bytes() == before


def test_early_stopping_stops_when_the_monitor_stalls(tmp_path, tiny_overrides):
    # min_delta=1.0 means no epoch can ever improve val/acc enough, so with patience 1 training
    # stops after the second epoch although six were allowed.
    result = train(
        compose(
            [
                *tiny_overrides,
                "trainer.max_epochs=6",
                "trainer.limit_train_batches=1",
                "evaluate_test=false",
                "early_stopping.enabled=true",
                "early_stopping.patience=1",
                "early_stopping.monitor=val/acc",
                "early_stopping.mode=max",
                "early_stopping.min_delta=1.0",
                f"runs_dir={tmp_path}",
                "name=es",
            ]
        )
    )
    assert result.metrics["epochs"] == 2


@pytest.mark.slow
def test_a_second_train_call_in_one_process_is_a_complete_independent_run(
    tiny_training, tmp_path, tiny_overrides
):
    """A sweep calls train() many times in one process: nothing may leak between calls.

    The second run also tests the best weights, not the last: "best" is the epoch with the
    HIGHEST validation loss, which as the model learns is an early one.
    """
    import logging
    import warnings

    from realfake.data.config import DataConfig
    from realfake.train.datamodule import ImageDataModule

    first, _ = tiny_training
    banner = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level, filters = banner.level, list(warnings.filters)
    result = train(
        compose(
            [
                *tiny_overrides,
                "trainer.max_epochs=2",
                "early_stopping.monitor=val/loss",
                "early_stopping.mode=max",
                "optim.lr=0.05",
                "sched.name=none",
                "data.batch_size=64",
                "trainer.limit_train_batches=3",
                "seed=1",
                f"runs_dir={tmp_path}",
            ]
        )
    )
    # Its own directory, named from its own config, with its own figures.
    assert result.run_dir.parent == tmp_path and result.run_dir.name.startswith("fastnet-")
    assert result.run_dir != first.run_dir
    assert json.loads((result.run_dir / "manifest.json").read_text())["seed"] == 1
    assert len(result.history) == 2 and len(first.history) == 2
    assert result.history != first.history
    assert _rows(first.run_dir / "metrics.csv")[-1]["epoch"] == "1"  # the first run untouched
    # Nothing process-wide changed: Lightning's log level and the warning filters are as before.
    assert banner.level == level and warnings.filters == filters

    history = result.history
    best_epoch = max(range(len(history)), key=lambda i: history[i]["val_loss"])
    assert best_epoch < len(history) - 1
    best = load_checkpoint(result.best_checkpoint)
    last = load_checkpoint(result.last_checkpoint)
    assert best["epoch"] == best_epoch
    assert any(not torch.equal(v, last["state_dict"][k]) for k, v in best["state_dict"].items())

    dm = ImageDataModule(DataConfig(), seed=0)
    test = dm.test_split

    def test_loss(ckpt) -> float:
        predictor = Predictor.load(ckpt)
        probs = predictor.probabilities(test.images)  # with the run's flip TTA, as the test
        picked = probs[np.arange(len(test)), test.labels.numpy()]
        return float(-np.log(np.maximum(picked, 1e-12)).mean())  # clamped as the test step

    reported = result.metrics["test_loss"]
    assert test_loss(result.best_checkpoint) == pytest.approx(reported, rel=1e-4)
    assert test_loss(result.last_checkpoint) != pytest.approx(reported, rel=1e-4)


# Measured with this recipe (the `make demo` one, seed 0, deterministic): 89.0% test accuracy
# on the 200 embedded test images; seeds 0-2 are recorded in BENCHMARKS.md. The floor leaves
# room for floating-point differences between machines while staying far above chance (50%):
# a 200-image test at 50% accuracy reaches 80% with probability < 1e-17.
DEMO_TEST_ACC_FLOOR = 0.80


@pytest.mark.slow
def test_demo_recipe_learns_far_above_chance(tmp_path, data_cache):
    result = train(
        compose(
            [
                "experiment=demo",
                "trainer.deterministic=true",
                "logging.mlflow=false",
                "logging.progress=plain",
                f"runs_dir={tmp_path}",
            ]
        )
    )
    assert result.metrics["test_acc"] >= DEMO_TEST_ACC_FLOOR


def _odd_split_tree(root):
    """The embedded set as train/val/test with odd val (51) and test (101) splits."""
    import shutil

    from realfake.data.embedded import embedded_data_path

    source = embedded_data_path()
    shutil.copytree(source / "train", root / "train")
    for cls, n_val in (("FAKE", 26), ("REAL", 25)):
        files = sorted((source / "test" / cls).glob("*.jpg"))
        for split, chosen in (
            ("val", files[:n_val]),
            ("test", files[n_val : n_val + 50 + (cls == "REAL")]),
        ):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for path in chosen:
                shutil.copy(path, root / split / cls / path.name)
    return root


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_reports_what_one_process_evaluates(tmp_path, data_cache):
    import os
    import subprocess
    import sys

    from realfake.evaluate.evaluation import evaluate

    data = _odd_split_tree(tmp_path / "data")
    runs = tmp_path / "runs"
    env = {**os.environ, "REALFAKE_CACHE": str(data_cache)}
    args = [
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "data.batch_size=32",
        f"data.source={data}",
        # Odd splits in batches of 25: the processes' shards differ in length and in batches
        # (val 26 + 25 images: 2 and 1 batches; test 51 + 50: 3 and 2).
        "data.eval_batch_size=25",
        "logging.mlflow=false",
        "logging.progress=plain",
        f"runs_dir={runs}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "realfake", "train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Both processes agreed on one run directory (a default name, from the first process).
    found = list(runs.iterdir())
    assert len(found) == 1 and found[0].name.startswith("fastnet-")
    run = found[0]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["world_size"] == 2
    assert len(_rows(run / "metrics.csv")) == 1
    assert proc.stdout.count("test acc") == 1  # one report, from the first process
    # The test figures cover the whole split once: exactly a one-process evaluation's.
    reported = json.loads((run / "results.json").read_text())["metrics"]
    assert reported["test_images"] == 101  # 51 + 50, none repeated to even out the shards
    single = evaluate(run, n_resamples=0, figures=False, report=False).metrics
    assert reported["test_acc"] == pytest.approx(single["accuracy_argmax"], abs=1e-6)
    assert reported["test_loss"] == pytest.approx(single["log_loss"], rel=1e-4)
    # Validation too: every one of the 51 validation images once.
    val = evaluate(run, split="val", out=tmp_path / "val", n_resamples=0, figures=False)
    assert val.record["images"] == 51
    assert float(_rows(run / "metrics.csv")[0]["val_acc"]) == pytest.approx(
        val.metrics["accuracy_argmax"], abs=1e-6
    )
