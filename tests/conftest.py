"""Shared fixtures: every test decodes into a per-session cache, never the user's ~/.cache."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """Point realfake's decode cache at a temporary folder shared by the whole session."""
    path = tmp_path_factory.mktemp("realfake-cache")
    old = os.environ.get("REALFAKE_CACHE")
    os.environ["REALFAKE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("REALFAKE_CACHE", None)
    else:
        os.environ["REALFAKE_CACHE"] = old


@pytest.fixture(autouse=True)
def _quiet_tracking(monkeypatch, tmp_path):
    """Keep MLflow stores that a test did not ask for out of the working directory."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
