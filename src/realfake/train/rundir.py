"""The run directory: where a run's config, manifest, checkpoints and metrics live."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from realfake.errors import CheckpointError

PACKAGES = ("realfake", "torch", "torchvision", "lightning", "torchmetrics", "numpy", "mlflow")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def tracking(self) -> Path:
        return self.path / "tracking.json"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state(start: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the source tree realfake runs from (None outside a checkout)."""
    where = start or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def device_description() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def resolve_run(ref: str | Path, runs_dir: str | Path = "runs") -> RunDir:
    """A run directory from a path, a name under ``runs_dir``, or ``latest``."""
    runs_dir = Path(runs_dir)
    if str(ref) == "latest":
        candidates = [p.parent.parent for p in runs_dir.glob("*/checkpoints/last.ckpt")]
        if not candidates:
            raise CheckpointError(f"resume=latest: no run with a last.ckpt under {runs_dir}/")
        return RunDir(max(candidates, key=lambda p: (p / "checkpoints/last.ckpt").stat().st_mtime))
    path = Path(ref)
    if not path.is_dir() and (runs_dir / path).is_dir():
        path = runs_dir / path
    if not path.is_dir():
        raise CheckpointError(f"run directory {ref} does not exist (also looked in {runs_dir}/)")
    run = RunDir(path)
    if not run.config.is_file():
        raise CheckpointError(f"{path} is not a realfake run directory: it has no config.yaml")
    return run


def default_run_name(model: str) -> str:
    # Child processes of a multi-process launch must agree on the directory of the parent.
    inherited = os.environ.get("REALFAKE_RUN_NAME")
    if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
        return inherited
    return f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
