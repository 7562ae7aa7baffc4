"""The LightningDataModule: cached uint8 splits in, normalised (and augmented) batches out."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from realfake.data.augment import (
    channel_stats,
    normalize,
    random_blur,
    random_flip_crop,
    random_jpeg,
    random_noise,
    random_resize,
    to_unit,
)
from realfake.data.batches import make_loader
from realfake.data.config import DataConfig
from realfake.data.layout import UNLABELLED
from realfake.data.loader import ImageSplit, LoadedData, load_images
from realfake.data.splits import TEST_STREAM, VAL_STREAM, duplicates_of, split_off
from realfake.errors import DataError

log = logging.getLogger(__name__)


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """A seed that depends only on (run seed, epoch, batch index)."""
    return ((seed * 1_000_003 + epoch) * 1_000_003 + batch) % (2**63)


class ImageDataModule(L.LightningDataModule):
    """Train/val/test splits of one source, with per-channel statistics of the train split.

    Splits found in the source are kept as they are. Otherwise a stratified test split is
    carved when ``test_fraction > 0`` (before anything else, so it never depends on the val
    settings), then train images byte-identical to a test image are dropped when asked, then
    ``val_fraction`` of each class becomes val. Mean and std come from what remains in train.
    """

    def __init__(self, config: DataConfig, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(config, DataConfig):  # an OmegaConf node of the same schema
            config = OmegaConf.to_object(config)  # type: ignore[assignment]
        config.validate()
        self.config = config
        self.seed = seed  # drives the per-epoch shuffle order
        self.classes: list[str] = []
        self.num_classes = 0
        self.fingerprint = ""
        self.content_hash = ""
        self.mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.std: tuple[float, float, float] = (1.0, 1.0, 1.0)
        self.train_split: ImageSplit | None = None
        self.val_split: ImageSplit | None = None
        self.test_split: ImageSplit | None = None
        self.dropped_duplicates = 0
        self.skipped: list[tuple[str, str]] = []
        self._restored: dict[str, Any] | None = None
        self._aug_epoch, self._aug_batch = -1, 0

    def _load(self) -> LoadedData:
        cfg = self.config
        return load_images(
            cfg.source,
            cfg.image_size,
            cfg.resize,
            cache_dir=cfg.cache_dir,
            strict=cfg.strict,
            classes=list(cfg.classes) if cfg.classes is not None else None,
            labelled=True,
        )

    def prepare_data(self) -> None:
        """Build the cache once (Lightning calls this on one process per node)."""
        self._load()

    def setup(self, stage: str | None = None) -> None:
        """Load the cache, carve val/test, compute mean/std; repeated calls do nothing."""
        if self.train_split is not None:
            return
        cfg = self.config
        data = self._load()
        where = cfg.source or "the embedded CIFAKE mini set"
        if "train" not in data.splits:
            found = sorted(s for s in data.splits if s != UNLABELLED)
            raise DataError(f"{where} has splits {found} but no train split; expected train/")
        train = data.splits["train"]
        val = data.splits.get("val")
        test = data.splits.get("test")
        fingerprint = data.fingerprint
        if cfg.test_source:
            test, test_fingerprint = self._load_test_source(data.classes)
            fingerprint = f"{fingerprint}+{test_fingerprint}"
        if test is None and cfg.test_fraction > 0:
            train, test = split_off(train, cfg.test_fraction, cfg.split_seed, TEST_STREAM)
        if cfg.drop_test_duplicates and test is not None:
            leaked = duplicates_of(train, [test])
            self.dropped_duplicates = int(leaked.sum())
            if self.dropped_duplicates:
                log.info(
                    "dropped %d train images duplicating a test image", self.dropped_duplicates
                )
                train = train.subset(np.flatnonzero(~leaked))
        if val is None and cfg.val_fraction > 0:
            train, val = split_off(train, cfg.val_fraction, cfg.split_seed, VAL_STREAM)
        present = sorted({data.classes[i] for i in train.labels.unique().tolist()})
        if len(present) < 2:
            raise DataError(
                f"the train split of {where} holds {len(train)} images of {len(present)} class "
                f"({', '.join(present) or 'none'}); expected at least two classes to learn from"
            )
        self.classes = data.classes
        self.num_classes = len(data.classes)
        self.fingerprint = fingerprint
        self.content_hash = data.content_hash
        self.skipped = data.skipped
        self.train_split, self.val_split, self.test_split = train, val, test
        self.mean, self.std = channel_stats(train.images)  # type: ignore[assignment]
        if self._restored is not None:
            self._apply_restored()

    def _load_test_source(self, classes: list[str]) -> tuple[ImageSplit, str]:
        """The test split of ``config.test_source``, in the training data's class order."""
        cfg = self.config
        data = load_images(
            cfg.test_source,
            cfg.image_size,
            cfg.resize,
            cache_dir=cfg.cache_dir,
            strict=cfg.strict,
            classes=classes,
            labelled=True,
        )
        if "test" in data.splits:
            return data.splits["test"], data.fingerprint
        if len(data.splits) == 1:
            return next(iter(data.splits.values())), data.fingerprint
        raise DataError(
            f"test_source {cfg.test_source} has splits {sorted(data.splits)} but no test split; "
            "expected a test/ split or a single image-folder tree"
        )

    def _loader(self, split: ImageSplit | None, name: str, train: bool = False) -> DataLoader:
        if self.train_split is None:
            self.setup()
        if split is None:
            hint = "set data.test_fraction > 0" if name == "test" else "set data.val_fraction > 0"
            raise DataError(f"{self.config.source or 'the data'} has no {name} split; {hint}")
        cfg = self.config
        return make_loader(
            split,
            cfg.batch_size if train else cfg.eval_batch_size,
            shuffle_seed=self.seed if train else None,
            num_workers=cfg.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_split, "train", train=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.train_split is not None and self.val_split is None:
            return []  # val_fraction=0 and no val/ folder: Lightning then skips validation
        return self._loader(self.val_split, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, "test")

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Float batch normalised with the train split's per-channel mean and std."""
        return normalize(x_uint8, self.mean, self.std)

    @property
    def degrades(self) -> bool:
        """Whether any robust-training degradation is switched on."""
        aug = self.config.augment
        return any(p > 0 for p in (aug.resize_prob, aug.blur_prob, aug.noise_prob, aug.jpeg_prob))

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random flip, pad-crop and robust-training degradations of a uint8 or [0, 1] batch.

        Flip and crop move pixels only, so they run on the uint8 batch in one gather (drawing
        from ``generator`` when given); the degradations (off by default) draw from the global
        generator, need [0, 1] floats and return them.
        """
        aug = self.config.augment
        # The padding is specified at 32 px; scale it so 224 px images shift as much.
        padding = max(1, round(aug.crop_padding * x.shape[-1] / 32)) if aug.crop_padding else 0
        x = random_flip_crop(x, padding, 0.5 if aug.flip else 0.0, generator)
        if not self.degrades:
            return x
        x = to_unit(x)
        # The degradations come after flip and crop and draw nothing when switched off, so runs
        # without them keep their random stream. Their order is a camera-to-upload pipeline:
        # resizing, blur, sensor noise, then JPEG compression last (CNNDetection: blur then JPEG).
        if aug.resize_prob > 0:
            x = random_resize(x, aug.resize_prob, aug.resize_scale_min)
        if aug.blur_prob > 0:
            x = random_blur(x, aug.blur_prob, aug.blur_sigma_max * x.shape[-1] / 32)
        if aug.noise_prob > 0:
            x = random_noise(x, aug.noise_prob, aug.noise_sigma_max)
        if aug.jpeg_prob > 0:
            x = random_jpeg(x, aug.jpeg_prob, aug.jpeg_quality_min, aug.jpeg_quality_max)
        return x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, labels = batch
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            epoch = trainer.current_epoch
            if epoch != self._aug_epoch:
                self._aug_epoch, self._aug_batch = epoch, 0
            # Each batch's augmentation draws from its own seed (seed, epoch, batch): a run
            # resumed at an epoch boundary then flips and crops exactly as an uninterrupted one,
            # whatever else (DataLoader iterators) consumed the global RNG.
            seed = batch_seed(self.seed, epoch, self._aug_batch)
            if self.degrades:  # they draw from the global RNG: seed it inside a fork
                devices = [x.device.index or 0] if x.is_cuda else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(seed)
                    x = self.augment(x)
            else:
                # A private generator seeded alike draws the same flips and crops, without the
                # cost of saving and restoring the global state (0.15 ms a batch, measured).
                x = self.augment(x, torch.Generator(device=x.device).manual_seed(seed))
            self._aug_batch += 1
        return self.normalize(x), labels

    def state_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "fingerprint": self.fingerprint,
            "content_hash": self.content_hash,
            "image_size": self.config.image_size,
            "resize": self.config.resize,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint's classes and statistics (the model was trained with them)."""
        self._restored = dict(state_dict)
        if self.train_split is not None:
            self._apply_restored()
        else:
            self.classes = list(state_dict["classes"])
            self.num_classes = len(self.classes)
            self.mean = tuple(state_dict["mean"])  # type: ignore[assignment]
            self.std = tuple(state_dict["std"])  # type: ignore[assignment]

    def _apply_restored(self) -> None:
        state = self._restored or {}
        if list(state["classes"]) != self.classes:
            raise DataError(
                f"class names do not match: the checkpoint has {list(state['classes'])} but "
                f"the data has {self.classes}"
            )
        self.mean = tuple(state["mean"])  # type: ignore[assignment]
        self.std = tuple(state["std"])  # type: ignore[assignment]
