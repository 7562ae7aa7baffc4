"""Ownership of a run directory: one training writes into it at a time.

The lock is a small JSON file (``RUN/.lock``: PID, host, process start time, when) created with
``O_CREAT | O_EXCL``, which is atomic, so of two trainings started together exactly one gets it.
A lock whose process is gone (same host, PID not running or reused by another process) is stale:
it is taken over with a warning, as a killed training leaves one behind. A lock from another
host cannot be checked from here: the error names the command that clears it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from realfake.errors import RunInUseError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the command name, which is in parentheses and may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return ticks is None or _start_ticks(pid) in (None, ticks)


class RunLock:
    """The lock of one run directory, held by this process between ``acquire`` and ``release``."""

    def __init__(self, run_path: Path) -> None:
        self.path = Path(run_path) / LOCK_NAME
        self.held = False

    def _owner(self) -> dict:
        pid = os.getpid()
        return {
            "pid": pid,
            "host": socket.gethostname(),
            "start_ticks": _start_ticks(pid),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def acquire(self) -> None:
        """Take the lock, or raise RunInUseError saying who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock removed, then a second try (racing takers: one wins)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(self._owner(), fh)
            self.held = True
            return
        raise RunInUseError(f"could not take the lock {self.path}; another process keeps taking it")

    def check(self) -> None:
        """Raise RunInUseError if another live process holds the lock; change nothing."""
        if self.held or not self.path.exists():
            return
        self._handle_existing(take_over=False)

    def _handle_existing(self, take_over: bool = True) -> None:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            owner = {}  # being written this instant, or damaged: treat as held below
        run = self.path.parent
        if not owner:  # created this instant by a training that has not written its name yet
            raise RunInUseError(f"run directory {run} is in use by another training process")
        pid, host = owner.get("pid"), owner.get("host")
        if isinstance(pid, int) and host == socket.gethostname():
            if _alive(pid, owner.get("start_ticks")):
                raise RunInUseError(
                    f"run directory {run} is in use by training process {pid} (since "
                    f"{owner.get('since')}); wait for it to end or choose another name=..."
                )
            if take_over:
                log.warning("%s: taking over the lock of process %d, no longer running", run, pid)
                self.path.unlink(missing_ok=True)
            return
        where = f"process {pid} on host {host}" if pid else "another process"
        raise RunInUseError(
            f"run directory {run} is locked by {where}; if no training uses it any more, "
            f"remove the lock with `rm {self.path}` and try again"
        )

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if not self.held:
            return
        try:
            owner = json.loads(self.path.read_text())
            if owner.get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, json.JSONDecodeError):
            pass
        self.held = False
