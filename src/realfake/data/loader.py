"""The one entry point that turns any source into decoded uint8 tensors, via the cache."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from realfake.data.build import NativeCap, build_entry
from realfake.data.cache import (
    CacheEntry,
    fingerprint,
    read_entry,
    remove_stale_temporaries,
    resolve_cache_dir,
)
from realfake.data.config import RESIZE_POLICIES
from realfake.data.embedded import embedded_data_path
from realfake.data.layout import (
    LAYOUTS,
    MANIFEST_LEVEL,
    SPLIT_NAMES,
    UNLABELLED,
    impose_classes,
    resolve_layout,
    source_folder,
)
from realfake.data.ragged import RaggedImages
from realfake.data.sources import TAR_SUFFIXES, ManifestSource, Source, open_source
from realfake.errors import DataError


class SkippedImagesWarning(UserWarning):
    """Some files of a source could not be decoded and were left out."""


class ResizedImagesWarning(UserWarning):
    """Native decoding brought images smaller than a tile to the tile's size (data.resize)."""


# What a split's images are: one uint8 N×3×H×W tensor (resized, or native of one size; it may
# wrap a memory-mapped array), or native images of mixed sizes.
Images = torch.Tensor | RaggedImages


@dataclass
class ImageSplit:
    images: Images  # uint8 N×3×H×W, or RaggedImages (native images of mixed sizes)
    labels: torch.Tensor  # int64 N; -1 for unlabelled images
    names: list[str]  # path relative to the source root, e.g. "test/FAKE/0 (7).jpg"
    md5: np.ndarray | None = None  # uint8 N×16 digest of each file's bytes (duplicate checks)
    sizes: np.ndarray | None = None  # int32 N×2 original (width, height)
    # Where each image comes from (load_images' rule: the data set's name, a folder level of
    # the path or a manifest's "source" column); None when nobody said.
    sources: list[str] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: np.ndarray | list[int]) -> ImageSplit:
        """The images at ``index`` (copied out of the memory map), in that order."""
        idx = np.asarray(index, dtype=np.int64)
        if isinstance(self.images, RaggedImages):
            images: Images = self.images.subset(idx)
        else:
            images = torch.from_numpy(self.images.numpy()[idx])
        return ImageSplit(
            images=images,
            labels=torch.from_numpy(self.labels.numpy()[idx]),
            names=[self.names[i] for i in idx.tolist()],
            md5=None if self.md5 is None else self.md5[idx],
            sizes=None if self.sizes is None else self.sizes[idx],
            sources=None if self.sources is None else [self.sources[i] for i in idx.tolist()],
        )

    @staticmethod
    def concat(parts: list[ImageSplit]) -> ImageSplit:
        """The images of ``parts`` one after the other (copied): one tensor when they share one
        image size, else RaggedImages (native images of several data sets)."""
        if len(parts) == 1:
            return parts[0]
        md5s, sizes, sources = [p.md5 for p in parts], [p.sizes for p in parts], []
        for p in parts:
            sources += p.sources or []
        return ImageSplit(
            images=concat_images([p.images for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            names=[name for p in parts for name in p.names],
            md5=np.concatenate(md5s) if all(a is not None for a in md5s) else None,  # type: ignore[arg-type]
            sizes=np.concatenate(sizes) if all(a is not None for a in sizes) else None,  # type: ignore[arg-type]
            sources=sources if all(p.sources is not None for p in parts) else None,
        )


def concat_images(parts: list[Images]) -> Images:
    """Images one after the other: torch.cat when all are tensors of one size, else ragged."""
    present = [p for p in parts if len(p)]
    if not present:
        return parts[0]
    shapes = {tuple(p.shape[1:]) for p in present if isinstance(p, torch.Tensor)}
    if len(shapes) == 1 and all(isinstance(p, torch.Tensor) for p in present):
        return torch.cat(present)  # type: ignore[arg-type]
    return RaggedImages.concat(present)


@dataclass
class LoadedData:
    splits: dict[str, ImageSplit]  # as found: "train", "val"?, "test"?, or "unlabelled"
    classes: list[str]
    fingerprint: str  # source files + preprocessing (the cache key)
    skipped: list[tuple[str, str]]  # (path, reason) of files that failed to decode
    ignored: int  # non-image files ignored (by extension, plus junk such as .DS_Store)
    content_hash: str = ""  # names, labels and bytes only: equal for equal data in any container
    layout: str = ""  # "split_tree" | "image_folder" | "manifest" | "unlabelled"
    cache_path: Path | None = field(default=None, repr=False)
    # Their names, sorted; empty for cache entries written before names were kept.
    ignored_files: list[str] = field(default_factory=list, repr=False)


def load_images(
    source: str | Path | None,
    image_size: int = 32,
    resize: str = "stretch",
    *,
    cache_dir: str | Path | None = None,
    strict: bool = False,
    classes: list[str] | None = None,
    labelled: bool | None = None,
    workers: int | None = None,
    source_name: str | None = None,
    source_level: int | None = None,
    native: bool = False,
    native_max_side: int = 512,
    native_max_gb: float = 8.0,
) -> LoadedData:
    """Decode ``source`` (None: the embedded CIFAKE mini) once into the cache and load it.

    ``labelled=None`` detects the layout; ``False`` reads every image under the path as
    unlabelled (prediction). ``classes`` imposes a label order, e.g. a checkpoint's.
    ``workers`` caps the decoding processes (default: every available core). Each image's
    source is the folder at ``source_level`` of its path when given, else a manifest's
    "source" column when it has one, else ``source_name`` (default: ``dataset_name(source)``).
    ``native`` keeps every image at its own size (``realfake.data.decode.fit_native``: at most
    ``native_max_side`` on a side, at least ``image_size``), refusing a source whose pixels
    would take more than ``native_max_gb``.
    """
    if resize not in RESIZE_POLICIES:
        raise DataError(f"resize={resize!r} is unknown; expected one of {list(RESIZE_POLICIES)}")
    if image_size < 1:
        raise DataError(f"image_size={image_size} is impossible; expected a positive size")
    path = embedded_data_path() if source is None else Path(source).expanduser()
    src = open_source(path)
    if source_level is not None and isinstance(src, ManifestSource):
        raise DataError(MANIFEST_LEVEL.format(where=path))
    mode = "unlabelled" if labelled is False else "auto"
    if source_level is not None and mode == "auto":
        # The level decides which folder is the class, so it is part of what was cached; the
        # names alone (source_name, a manifest's column) change nothing that was decoded.
        mode = f"auto:source_level={source_level}"
    cap = NativeCap(native_max_side, int(native_max_gb * 1e9)) if native else None
    key = fingerprint(
        src.kind, src.stamp(), image_size, resize, mode, native_max_side if native else None
    )
    root = resolve_cache_dir(cache_dir)
    # Builds killed before they could clean up (SIGKILL, power loss) left their temporary
    # folders here; those of builders still running are kept.
    remove_stale_temporaries(root)
    entry = read_entry(root, key)
    if entry is None:
        layout = resolve_layout(src, labelled, source_level if labelled is not False else None)
        build_entry(src, layout, image_size, resize, root, key, workers=workers, native=cap)
        entry = read_entry(root, key)
        if entry is None:  # pragma: no cover - only if someone deletes it meanwhile
            raise DataError(f"the cache entry {root / key} vanished while loading {path}")
    if cap is not None and entry.meta["native_bytes"] > cap.max_bytes:
        # Cached under a larger cap: this run's cap still holds for what it loads.
        found = f"{entry.meta['native_bytes'] / 1e9:.3g} GB cached in {entry.path}"
        raise cap.refuse(path, found)
    data = _from_entry(entry)
    if labelled and data.layout == UNLABELLED:
        n = len(data.splits[UNLABELLED])
        raise DataError(f"found {n} images in {path} but no class folders; expected {LAYOUTS}")
    _report_skipped(data, path, strict)
    _report_resized(entry.meta.get("resized", []), path, image_size, resize)
    if classes is not None:
        _impose(data, list(classes), str(path))
    _name_sources(data, src, source_name or dataset_name(source), source_level)
    return data


def dataset_name(source: str | Path | None) -> str:
    """A data set's default source name: its file or folder name without the extension, or its
    parent folder's name when that is a split name (``cifake-sample/train.tar``)."""
    path = (
        embedded_data_path() if source is None else Path(os.path.abspath(Path(source).expanduser()))
    )
    name = path.name
    if not path.is_dir():
        lower = name.lower()
        suffix = next((s for s in (*TAR_SUFFIXES, ".zip", ".csv") if lower.endswith(s)), None)
        name = name[: -len(suffix)] if suffix else path.stem
    if name.lower() in SPLIT_NAMES and path.parent.name:
        return path.parent.name
    return name or str(path)


def _name_sources(data: LoadedData, src: Source, name: str, level: int | None) -> None:
    """Fill every split's ``sources`` (see load_images for the rule)."""
    where = str(src.path)
    if level is not None:
        for split in data.splits.values():
            split.sources = [source_folder(n, level, where) for n in split.names]
        return
    column = {r.entry.name: r.source for r in src.rows()} if isinstance(src, ManifestSource) else {}
    if not any(column.values()):
        for split in data.splits.values():
            split.sources = [name] * len(split)
        return
    missing = [n for n, s in column.items() if not s]
    if missing:
        raise DataError(
            f"manifest {where} has a 'source' column but {len(missing)} rows without one (e.g. "
            f"{missing[0]}); expected a source on every row, or no 'source' column"
        )
    for split in data.splits.values():
        split.sources = [column[n] for n in split.names]  # type: ignore[misc]


def _from_entry(entry: CacheEntry) -> LoadedData:
    meta = entry.meta
    splits = {}
    for split, info in meta["splits"].items():
        arrays = entry.arrays(split)
        if info.get("ragged", False):
            images: Images = RaggedImages(arrays["pixels"], arrays["offsets"], arrays["shapes"])
        else:
            images = torch.from_numpy(arrays["images"])
        splits[split] = ImageSplit(
            images=images,
            labels=torch.from_numpy(arrays["labels"]),
            names=list(info["names"]),
            md5=arrays["md5"],
            sizes=arrays["sizes"],
        )
    return LoadedData(
        splits=splits,
        classes=list(meta["classes"]),
        fingerprint=meta["fingerprint"],
        skipped=[(p, r) for p, r in meta["skipped"]],
        ignored=int(meta["ignored"]),
        ignored_files=list(meta.get("ignored_files", [])),
        content_hash=meta["content_hash"],
        layout=meta["layout"],
        cache_path=entry.path,
    )


def _report_skipped(data: LoadedData, path: Path, strict: bool) -> None:
    if not data.skipped:
        return
    shown = "; ".join(f"{p} ({r})" for p, r in data.skipped[:20])
    more = f"; and {len(data.skipped) - 20} more" if len(data.skipped) > 20 else ""
    report = data.cache_path / "skipped.csv" if data.cache_path else "the cache"
    message = (
        f"{len(data.skipped)} files in {path} could not be decoded: {shown}{more} "
        f"(full list: {report})"
    )
    if strict:
        raise DataError(f"{message}; strict mode expects every image to decode")
    warnings.warn(message, SkippedImagesWarning, stacklevel=3)


def _report_resized(resized: list, path: Path, size: int, resize: str) -> None:
    """One warning for the images native decoding brought to the tile size (none: silent)."""
    if not resized:
        return
    name, w, h = resized[0]
    warnings.warn(
        f"{len(resized)} images of {path} are smaller than {size} px on a side and were "
        f"resized to {size}×{size} by data.resize={resize}, as prediction scores such an image "
        f"(e.g. {name}, {w}×{h})",
        ResizedImagesWarning,
        stacklevel=3,
    )


def _impose(data: LoadedData, wanted: list[str], where: str) -> None:
    """Relabel in place so that label i means ``wanted[i]``."""
    if data.layout == UNLABELLED:
        data.classes = wanted
        return
    table = torch.tensor(impose_classes(data.classes, wanted, where), dtype=torch.int64)
    for split in data.splits.values():
        if len(split):
            split.labels = table[split.labels]
    data.classes = wanted
