"""Fixtures for the data tests: every test gets its own cache folder, never ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default cache at a per-test folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("REALFAKE_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache shared by tests that only read the embedded set (decoded once per session)."""
    return tmp_path_factory.mktemp("embedded-cache")
