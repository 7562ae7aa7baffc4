"""A genuine 10-class set inside CIFAKE: its REAL images are CIFAR-10, class in the file name.

CIFAKE names REAL files ``N.jpg`` (CIFAR-10 class 1) or ``N (k).jpg`` (class k), in CIFAR-10's
order; ``export_cifar10`` copies them, byte for byte, into an image-folder split tree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from realfake.data.layout import resolve_layout
from realfake.data.sources import Entry, open_source
from realfake.errors import DataError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_CIFAKE_NAME = re.compile(r"^\d+(?: \((\d+)\))?$")


def cifar10_class(file_name: str) -> str:
    """CIFAR-10 class of a CIFAKE REAL file name: ``12.jpg`` -> airplane, ``12 (6).jpg`` -> dog."""
    stem = Path(file_name).stem
    match = _CIFAKE_NAME.match(stem)
    k = int(match.group(1) or 1) if match else 0
    if not 1 <= k <= len(CIFAR10_CLASSES):
        raise DataError(
            f"file name {file_name!r} does not follow CIFAKE's naming; expected 'N.jpg' or "
            "'N (k).jpg' with k from 1 to 10"
        )
    return CIFAR10_CLASSES[k - 1]


def parse_classes(names: Sequence[str] | str | None) -> list[str]:
    """Requested CIFAR-10 classes (a list or 'a,b,c'), in CIFAR-10 order; None means all."""
    if names is None:
        return list(CIFAR10_CLASSES)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in CIFAR10_CLASSES]
    if unknown or not names:
        raise DataError(
            f"unknown CIFAR-10 classes {unknown or '(none given)'}; expected names from "
            f"{', '.join(CIFAR10_CLASSES)}"
        )
    return [c for c in CIFAR10_CLASSES if c in names]


def export_cifar10(
    source: str | Path,
    destination: str | Path,
    classes: Sequence[str] | str | None = None,
) -> dict[str, dict[str, int]]:
    """Copy CIFAKE's REAL images to ``destination/<split>/<class>/<file>``; return counts."""
    wanted = parse_classes(classes)
    src = open_source(source)
    layout = resolve_layout(src, labelled=True)
    if "REAL" not in layout.classes:
        raise DataError(
            f"{source} has classes {layout.classes}; expected a CIFAKE source with a REAL folder"
        )
    dest = Path(destination).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(
            f"destination {dest} already exists and is not empty; expected a new folder"
        )
    real = layout.classes.index("REAL")
    targets: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    picked: list[Entry] = []
    for split, items in layout.splits.items():
        per_class = dict.fromkeys(wanted, 0)
        for entry, label in items:
            if label != real:
                continue
            base = entry.name.rsplit("/", 1)[-1]
            name = cifar10_class(base)
            if name in per_class:
                per_class[name] += 1
                targets[entry.name] = dest / split / name / base
                picked.append(entry)
        counts[split] = per_class
    if not picked:
        raise DataError(f"found no REAL images of classes {wanted} in {source}")
    for folder in {t.parent for t in targets.values()}:
        folder.mkdir(parents=True, exist_ok=True)
    for entry, data in src.read(picked):
        if isinstance(data, Exception):
            raise DataError(f"cannot read {entry.name} from {source} ({data})")
        targets[entry.name].write_bytes(data)
    return counts
