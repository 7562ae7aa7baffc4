"""Where evaluation images come from: the run's own splits, rebuilt exactly, or any source."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from realfake.data.config import DataConfig
from realfake.data.datamodule import ImageDataModule
from realfake.data.loader import ImageSplit, SkippedImagesWarning, load_images
from realfake.errors import DataError
from realfake.inference import Predictor


@dataclass
class EvalImages:
    split: ImageSplit
    where: str  # what these images are, for people
    name: str  # split name actually used ("test", "val", or "all" for a plain folder)
    fingerprint: str
    skipped: int  # files of the source that failed to decode


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory holding ``checkpoint`` (``RUN/checkpoints/x.ckpt``), if it is one."""
    run = checkpoint.resolve().parent.parent
    return run if (run / "config.yaml").is_file() else None


def run_datamodule(predictor: Predictor) -> ImageDataModule:
    """The run's data module (same source, split seed and class order), set up."""
    merged = OmegaConf.merge(OmegaConf.structured(DataConfig), predictor.config["data"])
    cfg: DataConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    cfg.classes = list(predictor.classes)
    # The splits depend only on the data config (split_seed), not on the run's seed.
    dm = ImageDataModule(cfg, seed=int(predictor.config.get("seed", 0)))
    dm.setup()
    return dm


def own_split(dm: ImageDataModule, split: str, source: str | None) -> EvalImages:
    """One split (train, val, test) of the run's rebuilt data."""
    if split not in ("train", "val", "test"):
        raise DataError(f"split '{split}' is unknown; expected train, val or test")
    images = getattr(dm, f"{split}_split")
    where = source or "the embedded CIFAKE mini set"
    if images is None or len(images) == 0:
        raise DataError(
            f"the run's data ({where}) has no {split} split (no {split}/ folder and "
            f"data.{split}_fraction=0); pass labelled images with --data"
        )
    return EvalImages(
        images, f"the run's {split} split of {where}", split, dm.fingerprint, len(dm.skipped)
    )


def labelled_split(source: str | Path, predictor: Predictor, split: str | None) -> EvalImages:
    """Labelled images of any source in the model's class order, at the model's size.

    A split tree gives ``split`` (default: test, or its only split); a plain
    ``<class>/<image>`` folder gives all of it, whatever ``split`` says.
    """
    size, resize = predictor.image_size, predictor.resize
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
