"""Fixtures for the robustness tests: one tiny training run per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, data_cache: Path) -> Path:
    """A fastnet trained for two steps on the embedded set: real checkpoint, val and test."""
    from realfake.train import compose, train

    runs = tmp_path_factory.mktemp("runs")
    overrides = [
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "logging.mlflow=false",
        "logging.progress=none",
        f"runs_dir={runs}",
        "name=tiny",
    ]
    return train(compose(overrides)).run_dir
