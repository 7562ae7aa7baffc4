"""The CIFAKE mini set shipped inside the package, so realfake runs with nothing else."""

from __future__ import annotations

from pathlib import Path


def embedded_data_path() -> Path:
    """Folder of the embedded CIFAKE mini split tree (train 500+500, test 100+100)."""
    return Path(__file__).resolve().parent / "embedded" / "cifake-mini"
