"""Small image sets for the robustness tests, copied from the embedded CIFAKE sample."""

from __future__ import annotations

import shutil
from pathlib import Path

from realfake.data.embedded import embedded_data_path


def embedded_images(split: str, label: str, n: int, skip: int = 0) -> list[Path]:
    """The first ``n`` (after ``skip``) embedded CIFAKE images of one split and class."""
    files = sorted((embedded_data_path() / split / label).glob("*.jpg"))
    return files[skip : skip + n]


def copy_tree(files: dict[str, Path], root: Path) -> Path:
    """Copy source files to ``root/<relative name>``."""
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / name)
    return root
