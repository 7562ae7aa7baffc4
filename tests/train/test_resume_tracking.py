"""Exact resume after SIGKILL, MLflow tracking read back with MLflow's client, offline W&B."""

from __future__ import annotations

import csv
import os
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


def test_resume_latest_picks_the_newest_run(tmp_path, data_cache):
    base = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", *RECIPE[3:]]
    train(compose([*base, f"runs_dir={tmp_path}", "name=old"]))
    train(compose([*base, f"runs_dir={tmp_path}", "name=new"]))
    # Resuming a finished run trains no more epochs and reports the same run directory.
    result = train(compose([f"runs_dir={tmp_path}"]), resume="latest")
    assert result.run_dir == tmp_path / "new"


def test_mlflow_run_is_readable_with_mlflows_client(tmp_path, data_cache):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = train(
        compose(
            [
                "trainer.max_epochs=2",
                "trainer.limit_train_batches=2",
                "logging.mlflow=true",
                f"logging.tracking_uri={uri}",
                "logging.progress=none",
                f"runs_dir={tmp_path / 'runs'}",
                "name=tracked",
            ]
        )
    )
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "resnet18" or run.data.params["model.name"]
    assert run.data.params["trainer.max_epochs"] == "2"
    assert run.data.tags["data_fingerprint"]
    assert "git_commit" in run.data.tags
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in history] == [0, 1]
    assert "test_acc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.csv", "checkpoints"} <= artifacts


def test_tracking_failure_is_a_warning_not_a_crash(tmp_path, data_cache):
    with pytest.warns(RuntimeWarning, match="MLflow tracking disabled"):
        result = train(
            compose(
                [
                    "trainer.max_epochs=1",
                    "trainer.limit_train_batches=1",
                    "logging.mlflow=true",
                    "logging.tracking_uri=nosuchscheme://nowhere",
                    "logging.progress=none",
                    f"runs_dir={tmp_path}",
                ]
            )
        )
    assert (result.run_dir / "checkpoints" / "last.ckpt").exists()
    assert result.mlflow_run_id is None


def test_wandb_offline_mode_writes_a_local_run(tmp_path, data_cache, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = train(
        compose(
            [
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=1",
                "logging.mlflow=false",
                "logging.wandb=true",
                "logging.wandb_mode=offline",
                "logging.progress=none",
                f"runs_dir={tmp_path}",
            ]
        )
    )
    offline = list((result.run_dir / "wandb").glob("offline-run-*"))
    assert offline, "W&B offline mode wrote no local run"
