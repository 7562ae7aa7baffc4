"""The LightningDataModule: cached uint8 splits in, normalised (and augmented) batches out.

With data.native, training batches are random crops of the native images (augmented and
normalised alike) and validation and test batches are the whole native images, uint8, which
the module scores by their tiles.

It lives in train/, the one layer that imports Lightning; realfake.data stays free of it.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from realfake.data.augment import (
    normalize,
    random_blur,
    random_brightness,
    random_colour_jitter,
    random_contrast,
    random_flip_crop,
    random_jpeg,
    random_noise,
    random_patch_mask,
    random_resize,
    random_rotate90,
    random_zoom,
)
from realfake.data.batches import EpochShuffleSampler, make_loader, sampled_loader
from realfake.data.config import DataConfig
from realfake.data.dataset import DataSplits, describe_source, load_splits
from realfake.data.loader import ImageSplit
from realfake.errors import DataError

log = logging.getLogger(__name__)


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """A seed that depends only on (run seed, epoch, batch index)."""
    return ((seed * 1_000_003 + epoch) * 1_000_003 + batch) % (2**63)


# Tags of the balanced sampler's random streams, apart from EpochShuffleSampler's [seed, epoch]
# and its flip stream [seed, 2**32].
_SHUFFLE_STREAM, _GROUP_STREAM = 2**32 + 1, 2**32 + 2


def balance_groups(
    split: ImageSplit, balance: str, classes: list[str]
) -> tuple[np.ndarray, list[str]]:
    """(group index of every image, group names) for ``data.balance``: its class, or its
    (source, class) pair; groups in sorted order."""
    by_source = balance == "source_class" and split.sources is not None
    sources = split.sources if by_source else [""] * len(split)
    keys = list(zip(sources, split.labels.tolist(), strict=True))  # type: ignore[arg-type]
    order = sorted(set(keys))
    index = {key: i for i, key in enumerate(order)}
    names = [f"{source} {classes[c]}".strip() for source, c in order]
    return np.array([index[key] for key in keys], np.int64), names


class BalancedSampler(EpochShuffleSampler):
    """This process's share of an epoch in which every group is drawn equally often.

    An epoch draws as many images as the split holds; each of the G groups (classes, or
    (source, class) pairs) gets n // G of the draws (the first n % G groups one more), taken
    from a (seed, epoch, group) permutation of its images, repeated when the group is smaller
    than its share and cut short when it is larger (another subset each epoch); the draws are
    then shuffled by (seed, epoch). Everything depends on (seed, epoch) alone, so a run resumed
    at an epoch boundary draws exactly what an uninterrupted one would. Sharded between
    processes and with alternating flips as :class:`~realfake.data.batches.EpochShuffleSampler`.
    """

    def __init__(
        self,
        groups: np.ndarray,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        alternate_flips: bool = False,
    ) -> None:
        super().__init__(len(groups), seed, rank, world, alternate_flips)
        self.members = [np.flatnonzero(groups == g) for g in np.unique(groups)]

    def draws(self) -> np.ndarray:
        """Every process's draws of this epoch, in order (image indices, repeats allowed)."""
        seed = self.seed % 2**63
        count = len(self.members)
        picks = []
        for g, members in enumerate(self.members):
            share = self.n // count + (g < self.n % count)
            rng = np.random.default_rng([seed, self.epoch, _GROUP_STREAM, g])
            rounds = [rng.permutation(members) for _ in range(-(-share // len(members)))]
            picks.append(np.concatenate(rounds)[:share])
        order = np.concatenate(picks)
        return np.random.default_rng([seed, self.epoch, _SHUFFLE_STREAM]).permutation(order)


class ImageDataModule(L.LightningDataModule):
    """Lightning's view of :func:`load_splits`: loaders of the splits and augmented batches.

    Under several processes (DDP) each process reads its own shard of every split, with no
    image repeated: training shards a (seed, epoch) permutation into equal parts (the last
    ``world - 1`` images of an epoch may be left out); validation and test shards may differ
    by one image, and the metrics sum over all of them.
    """

    def __init__(self, config: DataConfig, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(config, DataConfig):  # an OmegaConf node of the same schema
            config = OmegaConf.to_object(config)  # type: ignore[assignment]
        config.validate()
        self.config = config
        self.seed = seed  # drives the per-epoch shuffle order
        self.splits: DataSplits | None = None
        self._restored: dict[str, Any] | None = None
        self._aug_epoch, self._aug_batch = -1, 0

    def prepare_data(self) -> None:
        """Build the cache once (Lightning calls this on one process per node)."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Load the cache, carve val/test, compute mean/std; repeated calls do nothing."""
        if self.splits is not None:
            return
        self.splits = load_splits(self.config)
        if self._restored is not None:
            self._check_restored()

    def _ready(self) -> DataSplits:
        if self.splits is None:
            self.setup()
        assert self.splits is not None
        return self.splits

    @property
    def classes(self) -> list[str]:
        return self._ready().classes

    @property
    def fingerprint(self) -> str:
        return self._ready().fingerprint

    @property
    def mean(self) -> tuple[float, float, float]:
        if self._restored is not None:  # a resumed run keeps the statistics it trained with
            return tuple(self._restored["mean"])  # type: ignore[return-value]
        return self._ready().mean

    @property
    def std(self) -> tuple[float, float, float]:
        if self._restored is not None:
            return tuple(self._restored["std"])  # type: ignore[return-value]
        return self._ready().std

    @property
    def train_split(self) -> ImageSplit:
        return self._ready().train

    @property
    def val_split(self) -> ImageSplit | None:
        return self._ready().val

    @property
    def test_split(self) -> ImageSplit | None:
        return self._ready().test

    def _shard(self) -> tuple[int, int]:
        """(rank, world size) of this process, from the trainer (1 process without one)."""
        trainer = getattr(self, "trainer", None)
        return getattr(trainer, "global_rank", 0), getattr(trainer, "world_size", 1)

    def _loader(self, split: ImageSplit | None, name: str, train: bool = False) -> DataLoader:
        if split is None:
            hint = "set data.test_fraction > 0" if name == "test" else "set data.val_fraction > 0"
            raise DataError(f"{describe_source(self.config)} has no {name} split; {hint}")
        cfg = self.config
        rank, world = self._shard()
        if train and cfg.balance != "none":
            return self._balanced_loader(split, rank, world)
        return make_loader(
            split,
            cfg.batch_size if train else cfg.eval_batch_size,
            shuffle_seed=self.seed if train else None,
            num_workers=cfg.num_workers,
            rank=rank,
            world=world,
            alternate_flips=train and self._alternate_flips,
            native_crop=self._native_crop,
        )

    @property
    def _native_crop(self) -> int:
        """The side of native training crops (data.native), 0 for resized images."""
        return self.config.image_size if self.config.native else 0

    def _balanced_loader(self, split: ImageSplit, rank: int, world: int) -> DataLoader:
        """The training loader of ``data.balance``: make_loader's, with a BalancedSampler."""
        cfg = self.config
        groups, names = balance_groups(split, cfg.balance, self.classes)
        sizes = np.bincount(groups, minlength=len(names)).tolist()
        log.info(
            "balanced training batches (data.balance=%s): %d groups of %s images",
            cfg.balance,
            len(names),
            ", ".join(f"{n} {name}" for name, n in zip(names, sizes, strict=True)),
        )
        sampler = BalancedSampler(groups, self.seed, rank, world, self._alternate_flips)
        return sampled_loader(split, sampler, cfg.batch_size, cfg.num_workers, self._native_crop)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_split, "train", train=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_split is None:
            return []  # val_fraction=0 and no val/ folder: Lightning then skips validation
        return self._loader(self.val_split, "val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, "test")

    @property
    def _alternate_flips(self) -> bool:
        aug = self.config.augment
        return aug.flip and aug.flip_mode == "alternate"

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Float batch normalised with the train split's per-channel mean and std."""
        return normalize(x_uint8, self.mean, self.std)

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random flip, pad-crop and robust-training degradations of a uint8 batch (uint8 out).

        Flip and crop move pixels only, so they run on the batch in one gather; the degradations
        (off by default) need uint8. Every draw comes from ``generator`` when given, else from
        the global generator.
        """
        aug = self.config.augment
        # The padding is specified at 32 px; scale it so 224 px images shift as much.
        padding = max(1, round(aug.crop_padding * x.shape[-1] / 32)) if aug.crop_padding else 0
        # Alternating flips are the training loader's (it mirrors images as it reads them).
        flip_p = 0.5 if aug.flip and not self._alternate_flips else 0.0
        x = random_flip_crop(x, padding, flip_p, generator)
        # SAFE's augmentations against shortcuts, off by default (no draws when off): rotation
        # and colour before the degradations, masking last (it hides pixels, it is no camera).
        if aug.rotate90_prob > 0:
            x = random_rotate90(x, aug.rotate90_prob, generator)
        if aug.jitter_prob > 0:
            c = aug.jitter_change
            x = random_colour_jitter(x, aug.jitter_prob, c, c, c, generator)
        # The degradations come after flip and crop and draw nothing when switched off, so runs
        # without them keep their random stream. Their order is a camera-to-upload pipeline:
        # framing (zoom), resizing, exposure (brightness, contrast), blur, sensor noise, then JPEG
        # compression last (CNNDetection: blur then JPEG). Their levels are in the robustness
        # grid's units (blur σ in pixels of this image).
        if aug.zoom_prob > 0:
            x = random_zoom(x, aug.zoom_prob, aug.zoom_fraction_min, generator)
        if aug.resize_prob > 0:
            x = random_resize(x, aug.resize_prob, aug.resize_scale_min, generator)
        if aug.brightness_prob > 0:
            x = random_brightness(x, aug.brightness_prob, aug.brightness_max_change, generator)
        if aug.contrast_prob > 0:
            x = random_contrast(x, aug.contrast_prob, aug.contrast_max_change, generator)
        if aug.blur_prob > 0:
            x = random_blur(x, aug.blur_prob, aug.blur_sigma_max, generator)
        if aug.noise_prob > 0:
            x = random_noise(x, aug.noise_prob, aug.noise_sigma_max, generator)
        if aug.jpeg_prob > 0:
            x = random_jpeg(x, aug.jpeg_prob, aug.jpeg_quality_min, aug.jpeg_quality_max, generator)
        if aug.mask_prob > 0:
            patch = max(1, round(16 * x.shape[-1] / 256))  # SAFE's 16 px at 256 px
            x = random_patch_mask(x, aug.mask_prob, (0.0, aug.mask_fraction_max), patch, generator)
        return x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, labels = batch
        trainer = getattr(self, "trainer", None)
        training = trainer is not None and trainer.training
        if self.config.native and not training:
            # Whole native images, uint8: the module cuts them into tiles and normalises those,
            # as the predictor does (realfake.data.tiles).
            return x, labels
        if training:
            epoch = trainer.current_epoch
            if epoch != self._aug_epoch:
                self._aug_epoch, self._aug_batch = epoch, 0
            # Each batch's augmentation draws from a private generator seeded by (seed, epoch,
            # batch): a run resumed at an epoch boundary then flips, crops and degrades exactly
            # as an uninterrupted one, whatever else (DataLoader iterators) consumed the global
            # RNG, which is neither read nor saved and restored.
            seed = batch_seed(self.seed, epoch, self._aug_batch)
            x = self.augment(x, torch.Generator(device=x.device).manual_seed(seed))
            self._aug_batch += 1
        return self.normalize(x), labels

    def state_dict(self) -> dict[str, Any]:
        splits = self._ready()
        return {
            "classes": list(splits.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "fingerprint": splits.fingerprint,
            "content_hash": splits.content_hash,
            "image_size": self.config.image_size,
            "resize": self.config.resize,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint's classes and statistics (the model was trained with them)."""
        self._restored = dict(state_dict)
        if self.splits is not None:
            self._check_restored()

    def _check_restored(self) -> None:
        state = self._restored or {}
        if self.splits is not None and list(state["classes"]) != self.splits.classes:
            raise DataError(
                f"class names do not match: the checkpoint has {list(state['classes'])} but "
                f"the data has {self.splits.classes}"
            )
