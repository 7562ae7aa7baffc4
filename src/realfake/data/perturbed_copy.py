"""A perturbed copy of a data set, file for file, in the same layout (``realfake data perturb``).

Every image of the source (folder, .zip or .tar) is decoded at its own size, perturbed and
written to the same relative path under the destination. ``jpeg:Q`` writes the JPEG bytes
encoded at quality Q (``.jpg``), so decoding the copy gives exactly the perturbed pixels; every
other kind writes lossless PNG (``.png``, same stem), so no compression is added on top of the
perturbation. Non-image files are not copied.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from realfake.data.decode import _to_rgb, describe_failure
from realfake.data.perturbations import Perturbation, parse_perturbation
from realfake.data.sources import Entry, Source, open_source
from realfake.errors import DataError

CHUNK = 512  # images read, perturbed and written at a time


@dataclass
class PerturbedCopy:
    destination: Path
    perturbation: str
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def target_name(name: str, perturbation: Perturbation) -> str:
    """Where an image lands: the same relative path, suffix .jpg for JPEG kinds, else .png."""
    suffix = ".jpg" if perturbation.kind == "jpeg" else ".png"
    return str(Path(name).with_suffix(suffix)).replace("\\", "/")


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        im = _to_rgb(ImageOps.exif_transpose(im))  # the loader's colour policy
        return np.asarray(im).transpose(2, 0, 1).copy()


def _encode(image: torch.Tensor, perturbation: Perturbation) -> bytes:
    """JPEG at the perturbation's quality (the encoder jpeg_roundtrip uses), else PNG."""
    buffer = io.BytesIO()
    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    if perturbation.kind == "jpeg":
        picture.save(buffer, "JPEG", quality=int(perturbation.level))
    else:
        picture.save(buffer, "PNG")
    return buffer.getvalue()


def perturb_source(
    source: str | Path,
    destination: str | Path,
    perturbation: Perturbation | str,
    seed: int = 0,
) -> PerturbedCopy:
    """Write a ``perturbation``-ed copy of every image of ``source`` under ``destination``."""
    pert = parse_perturbation(perturbation) if isinstance(perturbation, str) else perturbation
    src = open_source(source)
    entries = src.listing().images
    if not entries:
        raise DataError(f"found no images in {source}")
    dest = Path(destination).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(
            f"destination {dest} already exists and is not empty; expected a new folder"
        )
    targets = {e.name: target_name(e.name, pert) for e in entries}
    outside = [t for t in targets.values() if Path(t).is_absolute() or ".." in Path(t).parts]
    if outside:
        raise DataError(
            f"{source} names images outside its own folder (e.g. {outside[0]}), which have no "
            "place under the destination; expected a folder, .zip or .tar"
        )
    clashes = len(targets) - len(set(targets.values()))
    if clashes:
        raise DataError(
            f"{clashes} images of {source} would land on the same file once their suffix becomes "
            f"{Path(next(iter(targets.values()))).suffix} (e.g. a.jpg and a.png side by side)"
        )
    copy = PerturbedCopy(dest, pert.name, 0)
    for start in range(0, len(entries), CHUNK):
        _write_chunk(src, entries[start : start + CHUNK], pert, seed + start, dest, targets, copy)
    return copy


def _write_chunk(
    src: Source,
    entries: list[Entry],
    pert: Perturbation,
    seed: int,
    dest: Path,
    targets: dict[str, str],
    copy: PerturbedCopy,
) -> None:
    by_size: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = defaultdict(list)
    for entry, data in src.read(entries):
        if isinstance(data, Exception):
            copy.skipped.append((entry.name, f"cannot read ({data})"))
            continue
        try:
            image = _decode(data)
        except Exception as exc:  # any decoder failure is this file's, not the whole copy's
            copy.skipped.append((entry.name, describe_failure(exc)))
            continue
        by_size[image.shape].append((entry.name, image))
    # Images of one size are perturbed as one batch; the seed depends on the chunk and the size
    # group only, so a copy is reproducible.
    for k, shape in enumerate(sorted(by_size)):
        group = by_size[shape]
        batch = torch.from_numpy(np.stack([image for _, image in group]))
        out = pert(batch, seed=seed * 1009 + k) if pert.kind != "jpeg" else batch
        for (name, _), image in zip(group, out, strict=True):
            path = dest / targets[name]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_encode(image, pert))
            copy.written += 1
