"""The decoded-image cache: one folder per (source files, preprocessing), written atomically.

An entry ``<cache_dir>/<fingerprint>/`` holds, per split, ``<split>.images.npy`` (uint8
N×3×H×W, memory-mapped on load), ``<split>.labels.npy``, ``<split>.sizes.npy`` (original
width, height) and ``<split>.md5.npy`` (digest of the file bytes, for duplicate checks), plus
``meta.json`` (classes, names, skipped files) and ``skipped.csv``. It is built in a temporary
folder and renamed into place, so a crash never leaves a half entry that a later run trusts.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realfake.errors import DataError

# Bump when the decoding or the on-disk format changes, so old entries are never reused.
CACHE_VERSION = 1
ARRAYS = ("images", "labels", "sizes", "md5")


def default_cache_dir() -> Path:
    """``$REALFAKE_CACHE`` when set, else ``~/.cache/realfake``."""
    env = os.environ.get("REALFAKE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "realfake"


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def fingerprint(kind: str, stamp: str, image_size: int, resize: str, mode: str) -> str:
    """Short hex key of the source files' identity and the preprocessing applied to them."""
    material = json.dumps([CACHE_VERSION, kind, stamp, image_size, resize, mode])
    return hashlib.sha256(material.encode()).hexdigest()[:20]


@dataclass
class CacheEntry:
    path: Path
    meta: dict[str, Any]

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """The split's arrays; images memory-mapped copy-on-write (never written back)."""
        out = {}
        for name in ARRAYS:
            file = self.path / f"{split}.{name}.npy"
            big = name == "images" and self.meta["splits"][split]["count"] > 0
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


class EntryWriter:
    """Builds an entry in a temporary folder; ``commit`` renames it into place."""

    def __init__(self, cache_dir: Path, key: str) -> None:
        self.final = cache_dir / key
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=cache_dir))
        except OSError as exc:
            raise DataError(
                f"cannot write the image cache in {cache_dir} ({exc.strerror}); set "
                "REALFAKE_CACHE or data.cache_dir to a writable folder"
            ) from exc

    def images(self, split: str, n: int, size: int) -> np.ndarray:
        """A writable N×3×size×size array backed by the entry's file."""
        file = self.tmp / f"{split}.images.npy"
        if n == 0:  # an empty file cannot be memory-mapped
            np.save(file, np.zeros((0, 3, size, size), np.uint8))
            return np.zeros((0, 3, size, size), np.uint8)
        return np.lib.format.open_memmap(file, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))

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
            os.rename(self.tmp, self.final)
        except OSError:
            # A finished entry already exists (a concurrent build, e.g. DDP ranks): keep it.
            if not (self.final / "meta.json").is_file():
                raise
            self.abort()
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
