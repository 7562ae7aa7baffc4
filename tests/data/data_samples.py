"""Small labelled image sets written with PIL, in every container the loader reads."""

from __future__ import annotations

import csv
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog")
# Split tree used by the layout tests: images per (split, class).
COUNTS = {"train": 6, "val": 2, "test": 3}


def image_bytes(seed: int, size: tuple[int, int] = (12, 10), fmt: str = "PNG") -> bytes:
    """A small random RGB image, encoded; the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, fmt)
    return buf.getvalue()


def tree_files(splits: bool = True) -> dict[str, bytes]:
    """Member name -> bytes of a small labelled set (PNG and JPEG, two classes)."""
    files = {}
    seed = 0
    for split, n in COUNTS.items() if splits else [("", 8)]:
        for cls in CLASSES:
            for i in range(n):
                seed += 1
                fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
                name = f"{cls}/{i} ({seed}).{ext}"
                files[f"{split}/{name}" if split else name] = image_bytes(seed, fmt=fmt)
    return files


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return path


def write_tar(path: Path, files: dict[str, bytes], prefix: str = "", mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def write_manifest(path: Path, files: dict[str, bytes], absolute: bool = False) -> Path:
    """Images beside the CSV at ``path``, listed with path,label(,split) columns."""
    root = write_folder(path.parent, files)
    has_split = all(name.count("/") >= 2 for name in files)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"] if has_split else ["path", "label"])
        for name in files:
            parts = name.split("/")
            where = str(root / name) if absolute else name
            writer.writerow([where, parts[-2], parts[0]] if has_split else [where, parts[-2]])
    return path
