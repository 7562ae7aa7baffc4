"""One tiny training run (and its evaluation) shared by every test in tests/evaluate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from realfake.data import embedded_data_path

# The smallest run that still has a val split (threshold) and a test split: 1 epoch, 2 batches.
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "data.batch_size=32",
    "logging.mlflow=false",
    "logging.progress=none",
]


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """Config overrides of the smallest useful training run."""
    return list(TINY)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_cache) -> Path:
    """A trained fastnet run directory on the embedded CIFAKE mini set (trained once)."""
    from realfake.train import compose, train

    runs = tmp_path_factory.mktemp("runs")
    return train(compose([*TINY, f"runs_dir={runs}", "name=tiny"])).run_dir


@pytest.fixture(scope="session")
def evaluated(tiny_run):
    """``evaluate`` of the tiny run on its own test split, figures and report included."""
    from realfake.evaluate import evaluate

    return evaluate(tiny_run, n_resamples=200)


@pytest.fixture(scope="session")
def test_folder(tmp_path_factory) -> Path:
    """A copy of the embedded test split as <class>/<image>, plus two unreadable files."""
    root = tmp_path_factory.mktemp("folder") / "cifake-test"
    shutil.copytree(embedded_data_path() / "test", root)
    good = next((root / "FAKE").glob("*.jpg")).read_bytes()
    (root / "FAKE" / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    (root / "REAL" / "empty.jpg").write_bytes(b"")
    return root
