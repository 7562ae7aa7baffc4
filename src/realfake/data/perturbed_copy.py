"""A perturbed copy of a data set, file for file, in the same layout (``realfake data perturb``).

Every image of the source (folder, .zip or .tar) is decoded at its own size, perturbed and
written to the same relative path under the destination. ``jpeg:Q`` writes the JPEG bytes
encoded at quality Q (``.jpg``), so decoding the copy gives exactly the perturbed pixels; every
other kind writes lossless PNG (``.png``, same stem), so no compression is added on top of the
perturbation. Non-image files are not copied.

Nothing is lost to a name clash: when two images land on one name (``a.jpg`` and ``a.png`` both
become ``a.png``), the first in sorted source order keeps it and the others get ``a__2.png``,
``a__3.png``, ... (names compared case-insensitively, so the copy is also whole on macOS and
Windows); the renames are listed in the result. Each file is written to a temporary name in its
folder and moved into place, so a crash never leaves a truncated image.

``transform_source`` is the copy with any batch transform in place of a perturbation: the
attacked copies of ``realfake.attacks.copy`` (which need a model, so cannot live here) use it.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections import defaultdict
from collections.abc import Callable
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
    # (source name, name written) of images whose natural name was already another image's.
    renamed: list[tuple[str, str]] = field(default_factory=list)


def _suffix(perturbation: Perturbation) -> str:
    return ".jpg" if perturbation.kind == "jpeg" else ".png"


def _with_suffix(name: str, suffix: str) -> str:
    return str(Path(name).with_suffix(suffix)).replace("\\", "/")


def target_name(name: str, perturbation: Perturbation) -> str:
    """Where an image lands: the same relative path, suffix .jpg for JPEG kinds, else .png."""
    return _with_suffix(name, _suffix(perturbation))


def target_names(names: list[str], perturbation: Perturbation) -> dict[str, str]:
    """Distinct output names for ``names``: ``target_name``, plus ``__k`` on a clash."""
    return distinct_names(names, _suffix(perturbation))


def distinct_names(names: list[str], suffix: str) -> dict[str, str]:
    """Distinct output names for ``names``: each with ``suffix``, plus ``__k`` on a clash.

    Decided from the sorted source names alone, so the same source always gives the same
    copy: natural names are claimed first (in sorted order), then each image that lost its
    name takes the smallest free ``<stem>__<k><suffix>``, k >= 2.
    """
    order = sorted(names)
    natural = {name: _with_suffix(name, suffix) for name in order}
    taken: set[str] = set()
    targets: dict[str, str] = {}
    losers: list[str] = []
    for name in order:
        key = natural[name].casefold()
        if key in taken:
            losers.append(name)
        else:
            taken.add(key)
            targets[name] = natural[name]
    for name in losers:
        stem, ext = os.path.splitext(natural[name])
        k = 2
        while f"{stem}__{k}{ext}".casefold() in taken:
            k += 1
        targets[name] = f"{stem}__{k}{ext}"
        taken.add(targets[name].casefold())
    return targets


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open rather than mkstemp: the file gets the umask's permissions (mkstemp's are 0600),
    # as a plain write would give it.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        im = _to_rgb(ImageOps.exif_transpose(im))  # the loader's colour policy
        return np.asarray(im).transpose(2, 0, 1).copy()


def _encode(image: torch.Tensor, perturbation: Perturbation) -> bytes:
    """JPEG at the perturbation's quality (the encoder jpeg_roundtrip uses), else PNG."""
    if perturbation.kind == "jpeg":
        return encode_image(image, "JPEG", quality=int(perturbation.level))
    return encode_image(image)


def encode_image(image: torch.Tensor, fmt: str = "PNG", **options: int) -> bytes:
    """One uint8 3×H×W image as file bytes (lossless PNG unless told otherwise)."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, fmt, **options)
    return buffer.getvalue()


# (uint8 images of one size, their source names, a seed) -> the uint8 images to write.
BatchTransform = Callable[[torch.Tensor, list[str], int], torch.Tensor]


def perturb_source(
    source: str | Path,
    destination: str | Path,
    perturbation: Perturbation | str,
    seed: int = 0,
) -> PerturbedCopy:
    """Write a ``perturbation``-ed copy of every image of ``source`` under ``destination``."""
    pert = parse_perturbation(perturbation) if isinstance(perturbation, str) else perturbation

    def apply(batch: torch.Tensor, names: list[str], seed: int) -> torch.Tensor:
        # JPEG happens in the encoder: the file holds the encoded bytes themselves.
        return batch if pert.kind == "jpeg" else pert(batch, seed=seed)

    return transform_source(
        source,
        destination,
        pert.name,
        apply,
        suffix=_suffix(pert),
        encode=lambda image: _encode(image, pert),
        seed=seed,
    )


def transform_source(
    source: str | Path,
    destination: str | Path,
    name: str,
    transform: BatchTransform,
    *,
    suffix: str = ".png",
    decode: Callable[[bytes], np.ndarray] = _decode,
    encode: Callable[[torch.Tensor], bytes] = encode_image,
    seed: int = 0,
) -> PerturbedCopy:
    """Write ``transform`` of every image of ``source`` (as ``decode`` gives it) under
    ``destination``, each at its relative path with ``suffix`` (``distinct_names``).

    ``name`` says what was applied (for the result). Images are decoded, transformed and
    written ``CHUNK`` at a time, those of one size as one batch.
    """
    src = open_source(source)
    entries = src.listing().images
    if not entries:
        raise DataError(f"found no images in {source}")
    dest = Path(destination).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(
            f"destination {dest} already exists and is not empty; expected a new folder"
        )
    targets = distinct_names([e.name for e in entries], suffix)
    outside = [t for t in targets.values() if Path(t).is_absolute() or ".." in Path(t).parts]
    if outside:
        raise DataError(
            f"{source} names images outside its own folder (e.g. {outside[0]}), which have no "
            "place under the destination; expected a folder, .zip or .tar"
        )
    renamed = [(n, t) for n, t in sorted(targets.items()) if t != _with_suffix(n, suffix)]
    copy = PerturbedCopy(dest, name, 0, renamed=renamed)
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start : start + CHUNK]
        _write_chunk(src, chunk, transform, decode, encode, seed + start, dest, targets, copy)
    return copy


def _write_chunk(
    src: Source,
    entries: list[Entry],
    transform: BatchTransform,
    decode: Callable[[bytes], np.ndarray],
    encode: Callable[[torch.Tensor], bytes],
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
            image = decode(data)
        except Exception as exc:  # any decoder failure is this file's, not the whole copy's
            copy.skipped.append((entry.name, describe_failure(exc)))
            continue
        by_size[image.shape].append((entry.name, image))
    # Images of one size are transformed as one batch; the seed depends on the chunk and the
    # size group only, so a copy is reproducible.
    for k, shape in enumerate(sorted(by_size)):
        group = by_size[shape]
        batch = torch.from_numpy(np.stack([image for _, image in group]))
        out = transform(batch, [name for name, _ in group], seed * 1009 + k)
        for (name, _), image in zip(group, out, strict=True):
            _write_atomic(dest / targets[name], encode(image))
            copy.written += 1
