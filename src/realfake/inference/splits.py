"""Labelled images to score: a run's own splits, rebuilt exactly, or any labelled source.

The run's splits come from its data config (same source, split seed and class order); any other
source is read in the model's class order at its size. Every command that scores labelled
images (evaluate, robustness, audits, compare, threshold freezing) takes them from here.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from realfake.data.config import DataConfig
from realfake.data.dataset import DataSplits, load_splits
from realfake.data.decode import MAX_NATIVE_PIXELS
from realfake.data.loader import (
    ImageSplit,
    ResizedImagesWarning,
    SkippedImagesWarning,
    load_images,
)
from realfake.errors import DataError, RealfakeError
from realfake.inference.predictor import BasePredictor


@dataclass
class EvalImages:
    split: ImageSplit
    where: str  # what these images are, for people
    name: str  # split name actually used ("test", "val", or "all" for a plain folder)
    fingerprint: str
    skipped: int  # files of the source that failed to decode

    def one_size(self, what: str) -> torch.Tensor:
        """The images as one N×3×H×W tensor, for ``what`` transforms whole batches of them; a
        DataError saying what to do when they come at several sizes (a run trained at native
        resolution on several sources)."""
        images = self.split.images
        if isinstance(images, torch.Tensor):
            return images
        sides = sorted({int(max(im.shape[-2:])) for im in images})
        raise DataError(
            f"{what} perturbs batches of images of one size, and {self.where} holds images of "
            f"{len(sides)} sizes ({sides[0]} to {sides[-1]} px a side): run it on one "
            "source at a time with --data PATH"
        )

    def identity(self) -> str:
        """SHA-256 of which images these are, in order, and their labels: two evaluations are
        paired image by image only when theirs match. The files' MD5s name the images whatever
        size they were decoded to; the pixels otherwise."""
        split = self.split
        digest = hashlib.sha256()
        identity = split.md5 if split.md5 is not None else split.images.numpy()
        digest.update(np.ascontiguousarray(identity).data)
        digest.update(np.ascontiguousarray(split.labels.numpy(), dtype=np.int64).data)
        return digest.hexdigest()


def run_splits(predictor: BasePredictor) -> DataSplits:
    """The run's splits, rebuilt from its data config in the model's class order."""
    if not getattr(predictor, "config", None):
        raise DataError(f"{predictor.checkpoint} holds no training config to rebuild its data from")
    merged = OmegaConf.merge(OmegaConf.structured(DataConfig), predictor.config["data"])  # type: ignore[attr-defined]
    cfg: DataConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    cfg.classes = list(predictor.classes)
    # The splits depend only on the data config (split_seed), not on the run's seed.
    return load_splits(cfg)


def own_split(splits: DataSplits, split: str, where: str) -> EvalImages:
    """One split (train, val, test) of the run's rebuilt data."""
    if split not in ("train", "val", "test"):
        raise DataError(f"split '{split}' is unknown; expected train, val or test")
    images = getattr(splits, split)
    if images is None or len(images) == 0:
        raise DataError(
            f"the run's data ({where}) has no {split} split (no {split}/ folder and "
            f"data.{split}_fraction=0); pass labelled images with --data"
        )
    return EvalImages(
        images,
        f"the run's {split} split of {where}",
        split,
        splits.fingerprint,
        len(splits.skipped),
    )


def native_options(predictor: BasePredictor) -> dict[str, Any]:
    """``load_images``' options that read images as the model scores them: at their own size
    for a model that scores tiles (capped as its run's data config says, else by the defaults),
    none for one that resizes whole images."""
    if not predictor.spec.tiles:
        return {}
    data = (getattr(predictor, "config", None) or {}).get("data") or {}
    defaults = DataConfig()
    # The region prediction tiles (the spec's cap, else the whole image up to the largest one
    # decoded at native resolution), so evaluate scores the pixels predict scores.
    side = predictor.spec.native_max_side or math.isqrt(MAX_NATIVE_PIXELS)
    return {
        "native": True,
        "native_max_side": max(side, predictor.image_size),  # never below one tile
        "native_max_gb": float(data.get("native_max_gb") or defaults.native_max_gb),
    }


def labelled_split(source: str | Path, predictor: BasePredictor, split: str | None) -> EvalImages:
    """Labelled images of any source in the model's class order, at the model's size (at
    their own size for a model that scores tiles, as predict reads them).

    A split tree gives ``split`` (default: test, or its only split); a plain
    ``<class>/<image>`` folder gives all of it, whatever ``split`` says.
    """
    size, resize = predictor.image_size, predictor.spec.resize
    native = native_options(predictor)
    with warnings.catch_warnings():  # the second load below reports unreadable files
        warnings.simplefilter("ignore", SkippedImagesWarning)
        warnings.simplefilter("ignore", ResizedImagesWarning)
        found_classes = load_images(source, size, resize, labelled=True, **native).classes
    unknown = [c for c in found_classes if c not in predictor.classes]
    if unknown:
        raise DataError(
            f"class names do not match: {source} has classes {found_classes} but the model "
            f"{predictor.checkpoint} was trained on {predictor.classes} (unknown here: {unknown}); "
            "name the class folders like the model's classes"
        )
    # Second load: a cache read that relabels into the model's class order.
    data = load_images(
        source, size, resize, classes=list(predictor.classes), labelled=True, **native
    )
    found = sorted(data.splits)
    if data.layout == "image_folder":
        name, images = "all", data.splits["train"]
    elif split is None and len(found) == 1:
        name, images = found[0], data.splits[found[0]]
    else:
        name = split or "test"
        if name not in data.splits:
            raise DataError(f"{source} has splits {found}, not '{name}'; choose one with --split")
        images = data.splits[name]
    if len(images) == 0:
        raise DataError(f"{source} holds no readable labelled images ({len(data.skipped)} failed)")
    where = f"{source}" if name == "all" else f"the {name} split of {source}"
    return EvalImages(images, where, name, data.fingerprint, len(data.skipped))


def eval_images(predictor: BasePredictor, data: str | Path | None, split: str | None) -> EvalImages:
    """The labelled images to score: ``data`` (any source), else the run's own ``split`` (test)."""
    if data is not None:
        return labelled_split(data, predictor, split)
    try:
        splits = run_splits(predictor)
    except RealfakeError as exc:
        raise type(exc)(
            f"cannot rebuild the run's data to find its {split or 'test'} split ({exc}); "
            "pass labelled images with --data"
        ) from exc
    return own_split(splits, split or "test", run_data_where(predictor, split or "test"))


def run_data_where(predictor: BasePredictor, split: str) -> str:
    """Where a split of the run's data comes from, for people."""
    cfg = getattr(predictor, "config", {})["data"]
    # The test split comes from data.test_source when there is one; train and val never do.
    source = (cfg.get("test_source") if split == "test" else None) or cfg.get("source")
    return source or "the embedded CIFAKE mini set"
