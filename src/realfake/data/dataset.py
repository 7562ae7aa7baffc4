"""A data config turned into its train/val/test splits and statistics (no Lightning).

Training wraps this in the LightningDataModule; evaluation calls it to rebuild a run's splits
exactly (same source, split seed and class order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from realfake.data.augment import channel_stats
from realfake.data.config import DataConfig
from realfake.data.layout import UNLABELLED
from realfake.data.loader import ImageSplit, LoadedData, load_images
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


def describe_source(cfg: DataConfig) -> str:
    return cfg.source or "the embedded CIFAKE mini set"


def load_splits(cfg: DataConfig) -> DataSplits:
    """Load ``cfg.source`` via the cache and carve its splits.

    Splits found in the source are kept as they are. Otherwise a stratified test split is
    carved when ``test_fraction > 0`` (before anything else, so it never depends on the val
    settings), then train images byte-identical to a test image are dropped when asked, then
    ``val_fraction`` of each class becomes val. Mean and std come from what remains in train.
    """
    cfg.validate()
    data = _load(cfg, cfg.source, list(cfg.classes) if cfg.classes is not None else None)
    where = describe_source(cfg)
    if "train" not in data.splits:
        found = sorted(s for s in data.splits if s != UNLABELLED)
        raise DataError(f"{where} has splits {found} but no train split; expected train/")
    train = data.splits["train"]
    val = data.splits.get("val")
    test = data.splits.get("test")
    fingerprint = data.fingerprint
    if cfg.test_source:
        test, test_fingerprint = _test_source(cfg, data.classes)
        fingerprint = f"{fingerprint}+{test_fingerprint}"
    if test is None and cfg.test_fraction > 0:
        train, test = split_off(train, cfg.test_fraction, cfg.split_seed, TEST_STREAM)
    dropped = 0
    if cfg.drop_test_duplicates and test is not None:
        leaked = duplicates_of(train, [test])
        dropped = int(leaked.sum())
        if dropped:
            log.info("dropped %d train images duplicating a test image", dropped)
            train = train.subset(np.flatnonzero(~leaked))
    if val is None and cfg.val_fraction > 0:
        train, val = split_off(train, cfg.val_fraction, cfg.split_seed, VAL_STREAM)
    present = sorted({data.classes[i] for i in train.labels.unique().tolist()})
    if len(present) < 2:
        raise DataError(
            f"the train split of {where} holds {len(train)} images of {len(present)} class "
            f"({', '.join(present) or 'none'}); expected at least two classes to learn from"
        )
    if cfg.positive_class is not None and cfg.positive_class not in data.classes:
        raise DataError(
            f"bad value for data config field 'positive_class': {cfg.positive_class!r} is not "
            f"a class of {where} ({', '.join(data.classes)})"
        )
    mean, std = channel_stats(train.images)
    return DataSplits(
        train=train,
        val=val,
        test=test,
        classes=list(data.classes),
        fingerprint=fingerprint,
        content_hash=data.content_hash,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        skipped=list(data.skipped),
        dropped_duplicates=dropped,
    )


def _test_source(cfg: DataConfig, classes: list[str]) -> tuple[ImageSplit, str]:
    """The test split of ``cfg.test_source``, in the training data's class order."""
    data = _load(cfg, cfg.test_source, classes)
    if "test" in data.splits:
        return data.splits["test"], data.fingerprint
    if len(data.splits) == 1:
        return next(iter(data.splits.values())), data.fingerprint
    raise DataError(
        f"test_source {cfg.test_source} has splits {sorted(data.splits)} but no test split; "
        "expected a test/ split or a single image-folder tree"
    )


def _load(cfg: DataConfig, source: str | None, classes: list[str] | None) -> LoadedData:
    """A labelled source decoded as ``cfg`` says (size, resize, cache, strictness)."""
    return load_images(
        source,
        cfg.image_size,
        cfg.resize,
        cache_dir=cfg.cache_dir,
        strict=cfg.strict,
        classes=classes,
        labelled=True,
    )
