"""A data config turned into its train/val/test splits and statistics (no Lightning).

Training wraps this in the LightningDataModule; evaluation calls it to rebuild a run's splits
exactly (same source, split seed and class order).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np

from realfake.data.augment import channel_stats
from realfake.data.config import DataConfig
from realfake.data.layout import UNLABELLED
from realfake.data.loader import Images, ImageSplit, LoadedData, dataset_name, load_images
from realfake.data.ragged import RaggedImages
from realfake.data.splits import TEST_STREAM, VAL_STREAM, duplicates_of, split_off
from realfake.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class DataSplits:
    train: ImageSplit
    val: ImageSplit | None
    test: ImageSplit | None
    classes: list[str]
    fingerprint: str  # source files + preprocessing (+ the test source's)
    content_hash: str
    mean: tuple[float, float, float]  # per channel of the train split, [0, 1] units
    std: tuple[float, float, float]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    dropped_duplicates: int = 0

    def sizes(self) -> dict[str, int]:
        return {
            name: len(split) if split is not None else 0
            for name, split in (("train", self.train), ("val", self.val), ("test", self.test))
        }


EMBEDDED = "the embedded CIFAKE mini set"


def describe_source(cfg: DataConfig) -> str:
    main = cfg.source or EMBEDDED
    if not cfg.extra_sources:
        return main
    return " + ".join([main, *(f"{name} ({x.source})" for name, x in cfg.extra_sources.items())])


@dataclass
class _DataSet:
    """One data set of a run: where it is, how it is split and how its images are named."""

    key: str  # "data" or "data.extra_sources.NAME", for messages
    source: str | None
    test_source: str | None
    val_fraction: float
    test_fraction: float
    split_seed: int
    name: str  # every image's source unless source_level names them
    source_level: int | None


@dataclass
class _Part:
    """A data set's train split and test split (val comes later), as loaded."""

    train: ImageSplit
    val: ImageSplit | None
    test: ImageSplit | None
    classes: list[str]
    fingerprint: str
    content_hash: str
    skipped: list[tuple[str, str]]


def _data_sets(cfg: DataConfig) -> list[_DataSet]:
    """The run's data sets: data.source first, then data.extra_sources in their order."""
    main = _DataSet(
        "data",
        cfg.source,
        cfg.test_source,
        cfg.val_fraction,
        cfg.test_fraction,
        cfg.split_seed,
        cfg.source_name or dataset_name(cfg.source),
        cfg.source_level,
    )
    sets = [main]
    for key, extra in cfg.extra_sources.items():
        ds = _DataSet(
            f"data.extra_sources.{key}",
            extra.source,
            extra.test_source,
            cfg.val_fraction if extra.val_fraction is None else extra.val_fraction,
            cfg.test_fraction if extra.test_fraction is None else extra.test_fraction,
            cfg.split_seed if extra.split_seed is None else extra.split_seed,
            extra.source_name or dataset_name(extra.source),
            extra.source_level,
        )
        same = next((other for other in sets if other.name == ds.name), None)
        if same is not None:
            raise DataError(
                f"{ds.key} ({ds.source}) and {same.key} ({same.source or EMBEDDED}) are both "
                f"named {ds.name!r}; expected a name of its own for every data set: set "
                f"{ds.key}.source_name"
            )
        sets.append(ds)
    return sets


def load_splits(cfg: DataConfig) -> DataSplits:
    """Load ``cfg.source`` (and each of ``cfg.extra_sources``) via the cache and carve splits.

    Splits found in a source are kept as they are. Otherwise a stratified test split is
    carved when ``test_fraction > 0`` (before anything else, so it never depends on the val
    settings), then train images byte-identical to a test image are dropped when asked, then
    ``val_fraction`` of each class becomes val. Each data set is split on its own, as it would
    be alone; the run's splits are their unions, in the order of the data sets. Mean and std
    come from what remains in train.
    """
    cfg.validate()
    sets = _data_sets(cfg)
    where = describe_source(cfg)
    first = _load_part(cfg, sets[0], list(cfg.classes) if cfg.classes is not None else None)
    classes = first.classes
    parts = [first, *(_load_part(cfg, ds, classes) for ds in sets[1:])]
    tests = [p.test for p in parts if p.test is not None]
    dropped = 0
    for part, ds in zip(parts, sets, strict=True):
        if cfg.drop_test_duplicates and tests:
            leaked = duplicates_of(part.train, tests)
            dropped += int(leaked.sum())
            if leaked.any():
                part.train = part.train.subset(np.flatnonzero(~leaked))
        if part.val is None and ds.val_fraction > 0:
            part.train, part.val = split_off(part.train, ds.val_fraction, ds.split_seed, VAL_STREAM)
    if dropped:
        log.info("dropped %d train images duplicating a test image", dropped)
    train = ImageSplit.concat([p.train for p in parts])
    val = _union([p.val for p in parts])
    test = _union([p.test for p in parts])
    present = sorted({classes[i] for i in train.labels.unique().tolist()})
    if len(present) < 2:
        raise DataError(
            f"the train split of {where} holds {len(train)} images of {len(present)} class "
            f"({', '.join(present) or 'none'}); expected at least two classes to learn from"
        )
    if cfg.positive_class is not None and cfg.positive_class not in classes:
        raise DataError(
            f"bad value for data config field 'positive_class': {cfg.positive_class!r} is not "
            f"a class of {where} ({', '.join(classes)})"
        )
    mean, std = image_stats(train.images)
    # One data set keeps the fingerprint and content hash it always had.
    fingerprint = "+".join(p.fingerprint for p in parts)
    content_hash = first.content_hash
    if len(parts) > 1:
        joined = "+".join(p.content_hash for p in parts)
        content_hash = hashlib.sha256(joined.encode()).hexdigest()[:20]
    return DataSplits(
        train=train,
        val=val,
        test=test,
        classes=list(classes),
        fingerprint=fingerprint,
        content_hash=content_hash,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        skipped=[s for p in parts for s in p.skipped],
        dropped_duplicates=dropped,
    )


def image_stats(images: Images) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std in [0, 1] units of a split's images (any storage)."""
    if isinstance(images, RaggedImages):
        return images.channel_stats()
    return channel_stats(images)


def _union(splits: list[ImageSplit | None]) -> ImageSplit | None:
    present = [s for s in splits if s is not None]
    return ImageSplit.concat(present) if present else None


def _load_part(cfg: DataConfig, ds: _DataSet, classes: list[str] | None) -> _Part:
    """One data set's train, val (when it has one) and test split (its own, its test_source's
    or carved), in the class order ``classes`` (None: its own)."""
    data = _load(cfg, ds, ds.source, classes)
    where = ds.source or EMBEDDED
    if "train" not in data.splits:
        found = sorted(s for s in data.splits if s != UNLABELLED)
        raise DataError(f"{where} has splits {found} but no train split; expected train/")
    train = data.splits["train"]
    test = data.splits.get("test")
    fingerprint = data.fingerprint
    if ds.test_source:
        test, test_fingerprint = _test_source(cfg, ds, data.classes)
        fingerprint = f"{fingerprint}+{test_fingerprint}"
    if test is None and ds.test_fraction > 0:
        train, test = split_off(train, ds.test_fraction, ds.split_seed, TEST_STREAM)
    return _Part(
        train,
        data.splits.get("val"),
        test,
        list(data.classes),
        fingerprint,
        data.content_hash,
        list(data.skipped),
    )


def _test_source(cfg: DataConfig, ds: _DataSet, classes: list[str]) -> tuple[ImageSplit, str]:
    """The test split of ``ds.test_source``, in the training data's class order."""
    data = _load(cfg, ds, ds.test_source, classes)
    if "test" in data.splits:
        return data.splits["test"], data.fingerprint
    if len(data.splits) == 1:
        return next(iter(data.splits.values())), data.fingerprint
    key = "test_source" if ds.key == "data" else f"{ds.key}.test_source"
    raise DataError(
        f"{key} {ds.test_source} has splits {sorted(data.splits)} but no test split; "
        "expected a test/ split or a single image-folder tree"
    )


def _load(
    cfg: DataConfig, ds: _DataSet, source: str | None, classes: list[str] | None
) -> LoadedData:
    """A labelled source of ``ds`` decoded as ``cfg`` says (size, resize, native, cache,
    strictness)."""
    return load_images(
        source,
        cfg.image_size,
        cfg.resize,
        cache_dir=cfg.cache_dir,
        strict=cfg.strict,
        classes=classes,
        labelled=True,
        source_name=ds.name,
        source_level=ds.source_level,
        native=cfg.native,
        native_max_side=cfg.native_max_side,
        native_max_gb=cfg.native_max_gb,
    )
