"""Bit-exact reproducibility: the same config and seed give the same metrics.csv, under load."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from realfake.train import compose, train

# A CPU-bound process beside the training, bounded in time whatever happens to the test.
BUSY_LOOP = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end:\n    pass\n"


@pytest.mark.slow
def test_the_same_seed_gives_the_same_metrics_csv_on_a_busy_machine(
    tiny_training, tiny_overrides, tmp_path
):
    first, _ = tiny_training  # the session's run, trained with whatever load it met
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        again = train(compose([*tiny_overrides, f"runs_dir={tmp_path}", "name=again"]))
    finally:
        busy.kill()
        busy.wait(timeout=30)
    assert (again.run_dir / "metrics.csv").read_bytes() == (
        first.run_dir / "metrics.csv"
    ).read_bytes()
    # channels_last was left to its auto rule, and the rule's choice is what config.yaml records.
    for run in (first.run_dir, again.run_dir):
        assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["channels_last"] is True
