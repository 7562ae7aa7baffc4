"""An evaluation reaches the run's W&B offline entry, as it reaches MLflow's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow  # a training and an evaluation in their own processes (W&B's service)
def test_evaluate_logs_to_the_runs_wandb_offline_run(tmp_path, tiny_overrides):
    pytest.importorskip("wandb")
    # Own processes: W&B keeps one service per process, and the test process may hold one.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_SERVICE")}
    env.update(WANDB_SILENT="true", WANDB_MODE="offline", WANDB_DIR=str(tmp_path))
    train = [
        *tiny_overrides,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "logging.wandb=true",
        "logging.wandb_mode=offline",
        f"runs_dir={tmp_path}",
        "name=wb",
    ]
    realfake = [sys.executable, "-m", "realfake"]
    subprocess.run([*realfake, "train", *train], env=env, check=True, timeout=300)
    run = tmp_path / "wb"
    before = sorted((run / "wandb").glob("offline-run-*"))
    assert len(before) == 1
    run_id = before[0].name.rsplit("-", 1)[-1]
    evaluate = [*realfake, "evaluate", str(run), "--no-figures", "--resamples", "0"]
    done = subprocess.run(evaluate, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "W&B offline logging skipped" not in done.stderr
    after = sorted((run / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(after) == 2  # the same W&B run, resumed by id
    records = b"".join(p.read_bytes() for p in after[1].glob("run-*.wandb"))
    assert b"eval/test/accuracy" in records and b"eval/test/data_fingerprint" in records
