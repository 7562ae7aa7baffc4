"""The decoded-image cache: one folder per (source files, preprocessing), written atomically.

An entry ``<cache_dir>/<fingerprint>/`` holds, per split, ``<split>.images.npy`` (uint8
N×3×H×W, memory-mapped on load), ``<split>.labels.npy``, ``<split>.sizes.npy`` (original
width, height) and ``<split>.md5.npy`` (digest of the file bytes, for duplicate checks), plus
``meta.json`` (classes, names, skipped and ignored files) and ``skipped.csv``. A native split
(``data.native``) of mixed image sizes has ``<split>.pixels.npy`` (every image back to back),
``<split>.offsets.npy`` and ``<split>.shapes.npy`` (h, w) in place of images (its meta says
``"ragged": true``); a native split of one size keeps the N×3×H×W images. It is built in a
temporary folder and renamed into place, so a crash never leaves a half entry that a later run
trusts.

A temporary folder is named after its owner: ``.tmp-<key>-<pid>.<start>@<host>-<random>`` (the
owner's PID, its start time in clock ticks since boot where ``/proc`` tells it, else 0, and its
host). A failed build removes its own folder; one whose owner was killed is removed by the next
load in that cache root (``remove_stale_temporaries``), while a folder whose owner still runs,
or runs on another host, is never touched: several processes may build into one cache at once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realfake.errors import DataError

log = logging.getLogger(__name__)

# Bump when the decoding or the on-disk format changes, so old entries are never reused.
CACHE_VERSION = 1
ARRAYS = ("images", "labels", "sizes", "md5")
# A native split of mixed sizes holds these instead of images (realfake.data.ragged).
RAGGED_ARRAYS = ("pixels", "offsets", "shapes")
TMP_PREFIX = ".tmp-"
# <key>-<pid>.<start>@<host>-<mkdtemp's random part: letters, digits, underscores>
_TMP_NAME = re.compile(
    r"^\.tmp-(?P<key>[0-9a-f]+)-(?P<pid>\d+)\.(?P<start>\d+)@(?P<host>[A-Za-z0-9._-]+)-[a-z0-9_]+$"
)
# Folders of releases before owners were recorded: nobody can tell whether their builder still
# runs, so they are removed only once nothing has touched them for a day.
_LEGACY_TMP_NAME = re.compile(r"^\.tmp-[0-9a-f]{20}-[a-z0-9_]{8}$")
LEGACY_TMP_AGE = 24 * 3600.0


def default_cache_dir() -> Path:
    """``$REALFAKE_CACHE`` when set, else ``~/.cache/realfake``."""
    env = os.environ.get("REALFAKE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "realfake"


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def fingerprint(
    kind: str,
    stamp: str,
    image_size: int,
    resize: str,
    mode: str,
    native_max_side: int | None = None,
) -> str:
    """Short hex key of the source files' identity and the preprocessing applied to them;
    ``native_max_side`` (native decoding) keys an entry apart from the resized ones."""
    parts: list = [CACHE_VERSION, kind, stamp, image_size, resize, mode]
    if native_max_side is not None:  # resized entries keep the keys they always had
        parts += ["native", native_max_side]
    material = json.dumps(parts)
    return hashlib.sha256(material.encode()).hexdigest()[:20]


@dataclass
class CacheEntry:
    path: Path
    meta: dict[str, Any]

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """The split's arrays; pixels memory-mapped copy-on-write (never written back).

        A native split of mixed sizes has pixels, offsets and shapes instead of images.
        """
        info = self.meta["splits"][split]
        ragged = info.get("ragged", False)
        out = {}
        names = [a for a in ARRAYS if a != "images"] + list(RAGGED_ARRAYS) if ragged else ARRAYS
        for name in names:
            file = self.path / f"{split}.{name}.npy"
            big = name in ("images", "pixels") and info["count"] > 0
            out[name] = np.load(file, mmap_mode="c" if big else None)
        return out


def read_entry(cache_dir: Path, key: str) -> CacheEntry | None:
    """The finished entry for ``key``, or None (a stale or foreign folder is removed)."""
    path = cache_dir / key
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("version") != CACHE_VERSION:
        shutil.rmtree(path, ignore_errors=True)
        return None
    return CacheEntry(path, meta)


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` (clock ticks since boot) from ``/proc``; None when it has none.

    A PID alone does not name a process: after a restart (a container especially) a new
    process can get the dead owner's PID. The start time tells them apart.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    return int(fields[19]) if len(fields) > 19 else None


def _host_tag() -> str:
    """This machine, and on Linux this PID namespace: PIDs mean nothing outside of it."""
    host = socket.gethostname() or "localhost"
    try:  # containers sharing a host name (--network host) have their own PID namespaces
        ns = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
        host += "_" + re.sub(r"\D", "", ns)
    except OSError:
        pass
    return re.sub(r"[^A-Za-z0-9._-]", "_", host)[:80]


def owner_tag(pid: int | None = None) -> str:
    """``<pid>.<start>@<host>``: who owns a temporary folder (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_start_ticks(pid) or 0}@{_host_tag()}"


def _owner_alive(pid: int, start: int, host: str) -> bool:
    """Whether the owner may still run; True whenever that cannot be ruled out."""
    if host != _host_tag():
        return True  # another machine or PID namespace: its PIDs cannot be checked here
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        except OSError:
            return True
        fields = stat.rpartition(")")[2].split()
        if fields and fields[0] == "Z":
            return False  # a zombie: dead, only not yet reaped by its parent
        return not (start and len(fields) > 19 and int(fields[19]) != start)  # PID reused?
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists under another user
        return True
    return True


def remove_stale_temporaries(cache_dir: Path) -> list[Path]:
    """Remove the temporary folders in ``cache_dir`` whose builder is dead; returns them.

    Folders of live owners (this process included) and of owners on other hosts are kept.
    """
    removed: list[Path] = []
    try:
        names = [e.name for e in os.scandir(cache_dir) if e.name.startswith(TMP_PREFIX)]
    except OSError:  # no cache yet, or unreadable: nothing to clean
        return removed
    for name in names:
        path = cache_dir / name
        match = _TMP_NAME.match(name)
        if match:
            stale = not _owner_alive(int(match["pid"]), int(match["start"]), match["host"])
            why = f"its builder (process {match['pid']} on {match['host']}) is gone"
        elif _LEGACY_TMP_NAME.match(name):
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                continue
            stale = age > LEGACY_TMP_AGE
            why = f"untouched for {age / 3600:.0f} hours"
        else:
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
                log.warning("removed the unfinished cache folder %s: %s", path, why)
    return removed


class EntryWriter:
    """Builds an entry in a temporary folder; ``commit`` renames it into place."""

    def __init__(self, cache_dir: Path, key: str) -> None:
        self.final = cache_dir / key
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            # The owner in the name, so a later load knows when it is safe to remove.
            prefix = f"{TMP_PREFIX}{key}-{owner_tag()}-"
            self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=cache_dir))
        except OSError as exc:
            raise DataError(
                f"cannot write the image cache in {cache_dir} ({exc.strerror}); set "
                "REALFAKE_CACHE or data.cache_dir to a writable folder"
            ) from exc

    def images(self, split: str, n: int, size: int, width: int | None = None) -> np.ndarray:
        """A writable N×3×size×width array (width: size) backed by the entry's file."""
        return self.array(f"{split}.images", (n, 3, size, size if width is None else width))

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A writable uint8 array of ``shape`` backed by the entry's file ``name``.npy."""
        file = self.tmp / f"{name}.npy"
        if 0 in shape:  # an empty file cannot be memory-mapped
            np.save(file, np.zeros(shape, np.uint8))
            return np.zeros(shape, np.uint8)
        return np.lib.format.open_memmap(file, mode="w+", dtype=np.uint8, shape=shape)

    def scratch(self, name: str) -> Path:
        """A file of the temporary folder, gone with it (never part of the entry's format)."""
        return self.tmp / f"{name}.scratch"

    def compact(self, split: str, images: np.ndarray, keep: np.ndarray) -> None:
        """Rewrite the split's images without the rows that failed to decode."""
        kept = self.images(f"{split}.kept", int(keep.sum()), images.shape[-1])
        rows = np.flatnonzero(keep)
        for start in range(0, len(rows), 4096):  # chunked: the images may not fit in memory
            kept[start : start + 4096] = images[rows[start : start + 4096]]
        if isinstance(kept, np.memmap):
            kept.flush()
        del kept
        os.replace(self.tmp / f"{split}.kept.images.npy", self.tmp / f"{split}.images.npy")

    def save(self, split: str, name: str, array: np.ndarray) -> None:
        np.save(self.tmp / f"{split}.{name}.npy", array)

    def commit(self, meta: dict[str, Any]) -> Path:
        """Write the metadata and move the entry into place (another process may have won)."""
        with (self.tmp / "skipped.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "reason"])
            writer.writerows(meta["skipped"])
        (self.tmp / "meta.json").write_text(json.dumps(meta))
        try:
            # Atomic: readers see no entry or a whole one. Renaming onto an existing non-empty
            # folder fails instead of replacing it, so the first of two builders wins.
            os.rename(self.tmp, self.final)
        except OSError:
            # A finished entry already exists (a concurrent build, e.g. DDP ranks): keep it.
            if not (self.final / "meta.json").is_file():
                raise
            self.abort()
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
