"""The LightningDataModule contract: splits, statistics, loaders, batch hooks, checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from data_samples import image_bytes, write_folder
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, DistributedSampler

from realfake.data.augment import normalize
from realfake.data.batches import TensorImageDataset, collate_batch
from realfake.data.config import AugmentConfig, DataConfig
from realfake.data.embedded import embedded_data_path
from realfake.errors import DataError
from realfake.train.datamodule import ImageDataModule


@pytest.fixture
def dm(shared_cache: Path) -> ImageDataModule:
    module = ImageDataModule(DataConfig(cache_dir=str(shared_cache), batch_size=128), seed=3)
    module.setup("fit")
    return module


def test_embedded_splits_and_statistics(dm: ImageDataModule) -> None:
    assert dm.classes == ["FAKE", "REAL"]
    assert dm.train_split is not None and dm.val_split is not None and dm.test_split is not None
    assert (len(dm.train_split), len(dm.val_split), len(dm.test_split)) == (900, 100, 200)
    assert dm.val_split.labels.bincount().tolist() == [50, 50]  # stratified
    assert not set(dm.train_split.names) & set(dm.val_split.names)
    assert all(n.startswith("test/") for n in dm.test_split.names)
    assert all(0.2 < m < 0.7 for m in dm.mean) and all(0.1 < s < 0.4 for s in dm.std)
    assert len(dm.fingerprint) >= 8
    dm.setup("fit")  # idempotent
    assert len(dm.train_split) == 900


def test_train_loader_batches_and_order(dm: ImageDataModule) -> None:
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == 8  # ceil(900 / 128), drop_last=False
    images, labels = batches[0]
    assert images.dtype == torch.uint8 and images.shape == (128, 3, 32, 32)
    assert labels.dtype == torch.int64 and batches[-1][0].shape[0] == 900 - 7 * 128
    order = torch.cat([lab for _, lab in batches])
    assert torch.equal(order, torch.cat([lab for _, lab in dm.train_dataloader()]))
    loader.sampler.set_epoch(1)
    assert not torch.equal(order, torch.cat([lab for _, lab in loader]))
    val = list(dm.val_dataloader())
    assert len(val) == 1 and torch.equal(val[0][1], dm.val_split.labels)  # deterministic order
    assert torch.equal(next(iter(dm.test_dataloader()))[0], dm.test_split.images)


def test_batch_transfer_normalises_and_augments_only_in_training(dm: ImageDataModule) -> None:
    images, labels = next(iter(dm.val_dataloader()))
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    assert x.dtype == torch.float32 and torch.equal(y, labels)
    assert torch.allclose(x, normalize(images, dm.mean, dm.std))
    assert torch.allclose(dm.normalize(images), x)
    try:
        dm.trainer = SimpleNamespace(training=True, current_epoch=0)  # type: ignore[assignment]
        augmented, _ = dm.on_after_batch_transfer((images, labels), 0)
        second, _ = dm.on_after_batch_transfer((images, labels), 0)
        dm.trainer = SimpleNamespace(training=True, current_epoch=1)  # type: ignore[assignment]
        next_epoch, _ = dm.on_after_batch_transfer((images, labels), 0)
        dm.trainer = SimpleNamespace(training=True, current_epoch=0)  # type: ignore[assignment]
        replay, _ = dm.on_after_batch_transfer((images, labels), 0)
    finally:
        dm.trainer = None  # type: ignore[assignment]
    assert augmented.shape == x.shape and not torch.allclose(augmented, x)
    # Augmentation is a function of (seed, epoch, batch index) only: replaying epoch 0 from its
    # first batch reproduces it exactly (what exact resume relies on); other batches differ.
    assert torch.equal(replay, augmented)
    assert not torch.equal(second, augmented)
    assert not torch.equal(next_epoch, augmented)


def test_accepts_an_omegaconf_node(shared_cache: Path) -> None:
    node = OmegaConf.structured(DataConfig(cache_dir=str(shared_cache), val_fraction=0.2))
    module = ImageDataModule(node)
    assert isinstance(module.config, DataConfig) and module.config.val_fraction == 0.2


def test_augmentation_can_be_switched_off(shared_cache: Path) -> None:
    config = DataConfig(
        cache_dir=str(shared_cache), augment=AugmentConfig(flip=False, crop_padding=0)
    )
    module = ImageDataModule(config)
    module.setup()
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(module.augment(x.float()), x.float())


def test_state_dict_round_trip_and_class_mismatch(dm: ImageDataModule, shared_cache: Path) -> None:
    state = dm.state_dict()
    assert state["classes"] == ["FAKE", "REAL"] and len(state["mean"]) == 3
    fresh = ImageDataModule(DataConfig(cache_dir=str(shared_cache)))
    fresh.load_state_dict({**state, "mean": [0.5, 0.5, 0.5]})
    assert fresh.classes == ["FAKE", "REAL"] and fresh.mean == (0.5, 0.5, 0.5)
    fresh.setup()
    assert fresh.mean == (0.5, 0.5, 0.5)  # the checkpoint's statistics win
    with pytest.raises(DataError, match=r"\['REAL', 'FAKE'\].*\['FAKE', 'REAL'\]"):
        dm.load_state_dict({**state, "classes": ["REAL", "FAKE"]})


def test_loader_works_with_distributed_samplers(dm: ImageDataModule) -> None:
    dataset = TensorImageDataset(dm.train_split)
    sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=100, sampler=sampler, collate_fn=collate_batch)
    seen = [images.shape[0] for images, _ in loader]
    assert sum(seen) == 450 and seen[0] == 100
    # What Lightning does with our own sampler under DDP: wrap it, forward set_epoch.
    train = dm.train_dataloader()
    wrapper = DistributedSamplerWrapper(train.sampler, num_replicas=2, rank=1)
    wrapper.set_epoch(4)
    assert train.sampler.epoch == 4
    wrapped = DataLoader(train.dataset, batch_size=64, sampler=wrapper, collate_fn=collate_batch)
    assert sum(len(lab) for _, lab in wrapped) == 450


def test_test_fraction_carves_a_stratified_test_split(tmp_path: Path) -> None:
    files = {
        f"{c}/{i}.png": image_bytes(100 * k + i) for k, c in enumerate("abc") for i in range(20)
    }
    root = write_folder(tmp_path / "folder", files)
    config = DataConfig(source=str(root), val_fraction=0.15, test_fraction=0.15, split_seed=1)
    module = ImageDataModule(config)
    module.setup()
    sizes = [len(module.train_split), len(module.val_split), len(module.test_split)]
    assert sizes == [42, 9, 9]  # 70/15/15 of 60, per class 14/3/3
    assert module.test_split.labels.bincount().tolist() == [3, 3, 3]
    again = ImageDataModule(
        DataConfig(source=str(root), val_fraction=0.3, test_fraction=0.15, split_seed=1)
    )
    again.setup()
    assert again.test_split.names == module.test_split.names  # val settings never move test
    no_test = ImageDataModule(DataConfig(source=str(root)))
    no_test.setup()
    assert no_test.test_split is None
    with pytest.raises(DataError, match="no test split"):
        no_test.test_dataloader()
    no_val = ImageDataModule(DataConfig(source=str(root), val_fraction=0.0))
    no_val.setup()
    assert no_val.val_split is None and no_val.val_dataloader() == []  # Lightning skips val


def test_drop_test_duplicates(tmp_path: Path) -> None:
    files = {
        f"train/{c}/{i}.png": image_bytes(10 * k + i) for k, c in enumerate("ab") for i in range(6)
    }
    files.update(
        {
            f"test/{c}/{i}.png": image_bytes(50 + 10 * k + i)
            for k, c in enumerate("ab")
            for i in range(2)
        }
    )
    files["train/a/leak.png"] = files["test/a/0.png"]
    root = write_folder(tmp_path / "t", files)
    keep = ImageDataModule(DataConfig(source=str(root), val_fraction=0.0))
    keep.setup()
    drop = ImageDataModule(
        DataConfig(source=str(root), val_fraction=0.0, drop_test_duplicates=True)
    )
    drop.setup()
    assert len(keep.train_split) == 13 and len(drop.train_split) == 12
    assert drop.splits.dropped_duplicates == 1 and "train/a/leak.png" not in drop.train_split.names


class _Tiny(L.LightningModule):
    def __init__(self, dm: ImageDataModule) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
        self.dm = dm
        self.epochs_seen: list[int] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> torch.Tensor:
        x, y = batch
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32)
        self.epochs_seen.append(self.trainer.train_dataloader.sampler.epoch)
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> None:
        x, _ = batch
        assert x.dtype == torch.float32

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_fit_and_checkpoint(tmp_path: Path, shared_cache: Path) -> None:
    dm = ImageDataModule(DataConfig(cache_dir=str(shared_cache), batch_size=64), seed=0)
    model = _Tiny(dm)
    trainer = L.Trainer(
        max_epochs=2, limit_train_batches=2, limit_val_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    assert model.epochs_seen == [0, 0, 1, 1]  # Lightning set the sampler's epoch
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert ckpt["ImageDataModule"]["classes"] == ["FAKE", "REAL"]


def test_copied_embedded_set_is_an_ordinary_source(tmp_path: Path) -> None:
    copy = shutil.copytree(embedded_data_path(), tmp_path / "mini")
    module = ImageDataModule(DataConfig(source=str(copy), val_fraction=0.2))
    module.setup()
    assert (len(module.train_split), len(module.val_split)) == (800, 200)


def test_test_source_supplies_the_test_split_from_another_source(tmp_path):
    from realfake.data.embedded import embedded_data_path

    cfg = DataConfig(
        source=str(embedded_data_path() / "train"),
        test_source=str(embedded_data_path() / "test"),
        cache_dir=str(tmp_path),
    )
    dm = ImageDataModule(cfg)
    dm.setup()
    assert len(dm.test_split) == 200
    assert dm.classes == ["FAKE", "REAL"]
    assert sorted(dm.test_split.labels.bincount().tolist()) == [100, 100]
    assert "+" in dm.fingerprint
