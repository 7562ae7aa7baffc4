"""Checkpoints written whole or not at all, and the newest intact one found again on resume."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from realfake.atomic import replacing
from realfake.errors import CheckpointError
from realfake.runs import RunDir, load_checkpoint

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, atomic on a local disk.

    Lightning's own writer goes through an fsspec transaction that stages the file in the
    system's temporary folder and then *copies* it into the run when that is another file
    system: a full disk then left a truncated ``last.ckpt`` in place of the intact one. Here
    the bytes go to a hidden temporary file beside the target, are fsynced, then renamed over
    it (realfake.atomic): the previous checkpoint stays whole until the new one is, and a
    failed write (ENOSPC, a read-only folder) removes its temporary file and raises an
    OutputError naming the checkpoint.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        # Serialised in memory first (as Lightning does): torch.save's own file writer reports
        # a full disk as an opaque RuntimeError, a plain write as the OSError it is.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with replacing(path) as tmp, tmp.open("wb") as fh:
            fh.write(buffer.getbuffer())


def resume_checkpoint(run: RunDir) -> tuple[Path | None, list[str]]:
    """The checkpoint a resumed run continues from, and why each newer one was passed over.

    ``last.ckpt`` when it loads; otherwise the intact checkpoint that trained furthest (best.ckpt
    or any other ``*.ckpt``). None when the run has no checkpoint yet; a CheckpointError naming
    every file when it has some and none can be read (nothing is changed then).
    """
    found = sorted(run.checkpoints.glob("*.ckpt")) if run.checkpoints.is_dir() else []
    if not found:
        return None, []
    passed_over: list[str] = []
    if run.last in found:
        try:
            load_checkpoint(run.last)
            return run.last, []
        except CheckpointError as exc:
            passed_over.append(str(exc))
    intact: list[tuple[tuple[int, int, float], Path]] = []
    for path in found:
        if path == run.last:
            continue
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            passed_over.append(str(exc))
            continue
        progress = (int(ckpt.get("global_step", 0)), int(ckpt.get("epoch", 0)))
        intact.append(((*progress, path.stat().st_mtime), path))
    if not intact:
        raise CheckpointError(
            f"no checkpoint of {run.path} can be read ({'; '.join(passed_over)}); nothing was "
            "changed: start a new run with another name=..."
        )
    return max(intact)[1], passed_over


def remove_partial_writes(run: RunDir) -> list[Path]:
    """Delete the temporary files of checkpoint writes a killed process left (lock held)."""
    leftovers = sorted(run.checkpoints.glob(".*.part")) if run.checkpoints.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
        log.info("removed %s, a checkpoint write that never completed", path)
    return leftovers
