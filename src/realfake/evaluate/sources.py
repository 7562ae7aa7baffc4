"""What an evaluation scores and decides with: the images, and the threshold frozen on validation.

Images are the run's own splits, rebuilt exactly (same source, split seed and class order), or
any labelled source. The threshold is chosen on the run's clean validation split; every command
that decides (evaluate, robustness, audits) takes it from here, with the predictor's TTA.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from realfake.data.config import DataConfig
from realfake.data.dataset import DataSplits, load_splits
from realfake.data.loader import ImageSplit, SkippedImagesWarning, load_images
from realfake.errors import DataError, RealfakeError
from realfake.evaluate.threshold import choose_threshold
from realfake.inference import Predictor
from realfake.runs import FrozenThreshold

log = logging.getLogger(__name__)


@dataclass
class EvalImages:
    split: ImageSplit
    where: str  # what these images are, for people
    name: str  # split name actually used ("test", "val", or "all" for a plain folder)
    fingerprint: str
    skipped: int  # files of the source that failed to decode

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


@dataclass
class Decision:
    """How binary decisions are made: threshold on P(positive), and where it came from."""

    threshold: float | None  # None: arg-max (multi-class)
    source: str
    frozen: FrozenThreshold | None = None  # set when chosen on the run's validation split


def run_splits(predictor: Predictor) -> DataSplits:
    """The run's splits, rebuilt from its data config in the model's class order."""
    if not predictor.config:
        raise DataError(f"{predictor.checkpoint} holds no training config to rebuild its data from")
    merged = OmegaConf.merge(OmegaConf.structured(DataConfig), predictor.config["data"])
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


def labelled_split(source: str | Path, predictor: Predictor, split: str | None) -> EvalImages:
    """Labelled images of any source in the model's class order, at the model's size.

    A split tree gives ``split`` (default: test, or its only split); a plain
    ``<class>/<image>`` folder gives all of it, whatever ``split`` says.
    """
    size, resize = predictor.image_size, predictor.spec.resize
    with warnings.catch_warnings():  # the second load below reports unreadable files
        warnings.simplefilter("ignore", SkippedImagesWarning)
        found_classes = load_images(source, size, resize, labelled=True).classes
    unknown = [c for c in found_classes if c not in predictor.classes]
    if unknown:
        raise DataError(
            f"class names do not match: {source} has classes {found_classes} but the model "
            f"{predictor.checkpoint} was trained on {predictor.classes} (unknown here: {unknown}); "
            "name the class folders like the model's classes"
        )
    # Second load: a cache read that relabels into the model's class order.
    data = load_images(source, size, resize, classes=list(predictor.classes), labelled=True)
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


def eval_images(
    predictor: Predictor, data: str | Path | None, split: str | None
) -> tuple[EvalImages, DataSplits | None, str]:
    """The images to score, the run's rebuilt splits (for the threshold) or why they are missing."""
    try:
        splits = run_splits(predictor)
    except RealfakeError as exc:
        if data is None:
            raise type(exc)(
                f"cannot rebuild the run's data to find its {split or 'test'} split ({exc}); "
                "pass labelled images with --data"
            ) from exc
        why = f"the run's data is not readable here: {exc}"
        log.warning("threshold 0.5: %s", why)
        return labelled_split(data, predictor, split), None, why
    if data is None:
        cfg, split = predictor.config["data"], split or "test"
        # The test split comes from data.test_source when there is one; train and val never do.
        source = (cfg.get("test_source") if split == "test" else None) or cfg.get("source")
        where = source or "the embedded CIFAKE mini set"
        return own_split(splits, split, where), splits, ""
    return labelled_split(data, predictor, split), splits, ""


def validation_decision(
    predictor: Predictor,
    splits: DataSplits | None,
    why_no_data: str,
    *,
    tta: bool | None = None,
    criterion: str = "accuracy",
    batch_size: int = 256,
) -> Decision:
    """The binary threshold chosen on the run's validation split (else 0.5), and its origin."""
    if predictor.positive is None:
        return Decision(None, "arg-max (multi-class)")
    if splits is None or splits.val is None or len(splits.val) == 0:
        return Decision(0.5, f"default 0.5 ({why_no_data or 'the run has no validation split'})")
    val = splits.val
    flip = predictor.resolve_tta(tta)
    probs = predictor.probabilities(val.images, tta=flip, batch_size=batch_size)
    positive = predictor.positive
    threshold = choose_threshold(val.labels.numpy(), probs[:, positive], positive, criterion)
    name = "accuracy" if criterion == "accuracy" else "Youden's J"
    source = f"chosen on the run's validation split ({len(val)} images, max {name})"
    frozen = FrozenThreshold(threshold, flip, criterion, source, predictor.sha256)
    return Decision(threshold, source, frozen)
