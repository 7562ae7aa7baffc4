"""Exact resume after SIGKILL, MLflow tracking read back with MLflow's client, offline W&B."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realfake.train import compose, train

RECIPE = [
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=10",
    "trainer.deterministic=true",
    "data.batch_size=32",
    "logging.mlflow=false",
    "logging.progress=plain",
    "seed=3",
]


def _train_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "realfake", "train", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(tmp_path, data_cache):
    env = {**os.environ, "REALFAKE_CACHE": str(data_cache)}
    runs = tmp_path / "runs"
    reference = _train_cli([*RECIPE, f"runs_dir={runs}", "name=ref"], env)
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out

    victim = _train_cli([*RECIPE, f"runs_dir={runs}", "name=victim"], env)
    metrics = runs / "victim" / "metrics.csv"
    deadline = time.monotonic() + 300
    # Wait for the first epoch to be written (checkpoint saved), then kill mid-way through the next.
    while time.monotonic() < deadline:
        if metrics.exists() and len(_rows(metrics)) >= 1 and victim.poll() is None:
            time.sleep(1.5)
            break
        assert victim.poll() is None, victim.communicate()[0]
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert len(_rows(metrics)) < 3, "the run finished before it could be killed"

    resumed = _train_cli(["--resume", str(runs / "victim")], env)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming at epoch" in out

    ref_rows, res_rows = _rows(runs / "ref" / "metrics.csv"), _rows(metrics)
    assert [r["epoch"] for r in res_rows] == ["0", "1", "2"]
    for a, b in zip(ref_rows, res_rows, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert a[key] == b[key], (key, a, b)


def test_resume_latest_picks_the_newest_run(tiny_run, tmp_path):
    import os

    for name in ("old", "new"):
        run = shutil.copytree(tiny_run, tmp_path / name)
        # The copies keep the tiny run's config but not its tracking.
        config = run / "config.yaml"
        config.write_text(config.read_text().replace("mlflow: true", "mlflow: false"))
    os.utime(tmp_path / "old" / "checkpoints" / "last.ckpt", (1, 1))  # older
    # Resuming a finished run trains no more epochs and reports the same run directory.
    result = train(compose([f"runs_dir={tmp_path}"]), resume="latest")
    assert result.run_dir == tmp_path / "new"
    assert len(result.history) == 2  # the epochs recorded before, none added


def test_mlflow_run_is_readable_with_mlflows_client(tiny_training, tiny_tracking_uri):
    from mlflow.tracking import MlflowClient

    result, _ = tiny_training
    client = MlflowClient(tracking_uri=tiny_tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "fastnet"
    assert run.data.params["trainer.max_epochs"] == "2"
    assert run.data.tags["data_fingerprint"]
    assert "git_commit" in run.data.tags
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in history] == [0, 1]
    assert [m.value for m in history] == pytest.approx([r["val_acc"] for r in result.history])
    assert run.data.metrics["test_acc"] == pytest.approx(result.metrics["test_acc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "model.json", "metrics.csv", "checkpoints"} <= artifacts


def test_tracking_failure_is_a_warning_not_a_crash(tmp_path, tiny_overrides):
    with pytest.warns(RuntimeWarning, match="MLflow tracking disabled"):
        result = train(
            compose(
                [
                    *tiny_overrides,
                    "trainer.max_epochs=1",
                    "trainer.limit_train_batches=1",
                    "trainer.limit_val_batches=1",
                    "evaluate_test=false",
                    "logging.mlflow=true",
                    "logging.tracking_uri=nosuchscheme://nowhere",
                    f"runs_dir={tmp_path}",
                ]
            )
        )
    assert (result.run_dir / "checkpoints" / "last.ckpt").exists()
    assert result.mlflow_run_id is None


@pytest.mark.slow
def test_wandb_offline_mode_writes_a_local_run(tmp_path, tiny_overrides, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = train(
        compose(
            [
                *tiny_overrides,
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=1",
                "trainer.limit_val_batches=1",
                "evaluate_test=false",
                "logging.wandb=true",
                "logging.wandb_mode=offline",
                f"runs_dir={tmp_path}",
            ]
        )
    )
    offline = list((result.run_dir / "wandb").glob("offline-run-*"))
    assert offline, "W&B offline mode wrote no local run"
