"""Several data sets in one run: unions of their splits, one image size, balanced batches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from data_samples import image_bytes, write_folder

from realfake.data.batches import EpochShuffleSampler
from realfake.data.config import DataConfig, ExtraSource
from realfake.data.dataset import load_splits
from realfake.errors import ConfigError, DataError
from realfake.train import train
from realfake.train.config import compose, to_object
from realfake.train.datamodule import BalancedSampler, ImageDataModule, balance_groups


def _faces(root: Path, per_class: int = 20, classes=("FAKE", "REAL"), size=64) -> Path:
    """A second source: ``per_class`` images of each class at ``size`` px (not the run's)."""
    files = {
        f"{cls}/{i}.png": image_bytes(1000 * (k + 1) + i, size=(size, size))
        for k, cls in enumerate(classes)
        for i in range(per_class)
    }
    return write_folder(root, files)


def _two_sources(tmp_path: Path, **data) -> DataConfig:
    faces = ExtraSource(source=str(_faces(tmp_path / "faces-256")), test_fraction=0.2)
    return DataConfig(extra_sources={"faces": faces}, **data)


def test_every_split_is_the_union_of_each_data_sets_split_alone(tmp_path: Path) -> None:
    cfg = _two_sources(tmp_path)
    both = load_splits(cfg)
    mini = load_splits(DataConfig())
    faces = load_splits(DataConfig(source=str(tmp_path / "faces-256"), test_fraction=0.2))
    for name in ("train", "val", "test"):
        union, parts = getattr(both, name), (getattr(mini, name), getattr(faces, name))
        # Each data set carved as it is alone, in the order of the data sets.
        assert union.names == parts[0].names + parts[1].names, name
        assert torch.equal(union.images, torch.cat([p.images for p in parts])), name
        assert union.sources == ["cifake-mini"] * len(parts[0]) + ["faces-256"] * len(parts[1])
    # The 64 px faces are brought to the run's 32 px like any image.
    assert both.train.images.shape[1:] == (3, 32, 32)
    assert Counter(both.test.sources) == {"cifake-mini": 200, "faces-256": 8}
    assert both.classes == ["FAKE", "REAL"]
    assert (
        both.fingerprint.startswith(mini.fingerprint + "+") and both.fingerprint != mini.fingerprint
    )
    assert both.content_hash != mini.content_hash


def test_an_extra_data_set_follows_the_runs_class_order_and_classes(tmp_path: Path) -> None:
    # Only fakes of a new generator: they join the run's FAKE class.
    fakes = ExtraSource(source=str(_faces(tmp_path / "gen", classes=("FAKE",))))
    splits = load_splits(DataConfig(extra_sources={"gen": fakes}))
    train = splits.train
    gen = [int(y) for y, s in zip(train.labels, train.sources, strict=True) if s == "gen"]
    assert len(gen) == 18 and set(gen) == {0}  # FAKE = 0
    cats = ExtraSource(source=str(_faces(tmp_path / "cats", classes=("FAKE", "cat"))))
    with pytest.raises(DataError, match=r"has classes \['FAKE', 'cat'\].*unknown: \['cat'\]"):
        load_splits(DataConfig(extra_sources={"cats": cats}))


def test_two_data_sets_of_one_name_are_refused(tmp_path: Path) -> None:
    copy = ExtraSource(source=str(_faces(tmp_path / "cifake-mini")))
    with pytest.raises(
        DataError, match=r"data.extra_sources.again .* are both named 'cifake-mini'.*source_name"
    ):
        load_splits(DataConfig(extra_sources={"again": copy}))
    renamed = ExtraSource(source=copy.source, source_name="copy")
    assert "copy" in load_splits(DataConfig(extra_sources={"again": renamed})).train.sources


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.balance=classes", "'balance': 'classes'; expected one of none, class, source_class"),
        ("data.extra_sources={x: {test_fraction: 0.1}}", "'extra_sources.x.source' is not set"),
        (
            "data.extra_sources={x: {source: a, val_fraction: 1.5}}",
            "'extra_sources.x.val_fraction': 1.5; expected a fraction",
        ),
        ("data.source_level=-1", "'source_level': -1; expected an integer >= 0"),
        ("data.source_level=0", "'source_name' \\('cam'\\) and 'source_level' \\(0\\) are both"),
    ],
)
def test_bad_source_settings_are_one_sentence_naming_the_key(override, message) -> None:
    overrides = [override] + (["data.source_name=cam"] if "level=0" in override else [])
    with pytest.raises(ConfigError, match=message):
        to_object(compose(overrides))


def test_a_shipped_config_mixes_cifake_and_faces_balanced(tmp_path, monkeypatch) -> None:
    for rel in ("cifake-sample/train.tar", "cifake-sample/test.tar", "faces-256/train.tar"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    monkeypatch.setenv("REALFAKE_DATA", str(tmp_path))
    data = to_object(compose(["data=cifake_faces"])).data
    assert data.image_size == 32 and data.balance == "source_class"
    assert data.source == str(tmp_path / "cifake-sample" / "train.tar")
    faces = data.extra_sources["faces"]
    assert faces.source == str(tmp_path / "faces-256" / "train.tar")
    # faces_256.yaml's carving, so that its test images are the same in both runs.
    alone = to_object(compose(["data=faces_256"])).data
    assert (faces.test_fraction, faces.val_fraction, faces.split_seed) == (
        alone.test_fraction,
        alone.val_fraction,
        alone.split_seed,
    )


def _groups(n_per_group: list[int]) -> np.ndarray:
    return np.concatenate([np.full(n, g) for g, n in enumerate(n_per_group)])


def test_the_balanced_sampler_draws_every_group_equally_often() -> None:
    groups = _groups([700, 200, 60, 40])  # n = 1000
    sampler = BalancedSampler(groups, seed=5)
    seen = Counter()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == 1000
        assert np.bincount(groups[drawn]).tolist() == [250, 250, 250, 250]
        seen.update(drawn)
    # The large group shows other images in other epochs; the small ones repeat.
    assert len({i for i in seen if groups[i] == 0}) > 250
    assert all(i in seen for i in np.flatnonzero(groups == 3))


def test_the_balanced_sampler_depends_on_seed_and_epoch_alone() -> None:
    groups = _groups([30, 10, 5])
    running = BalancedSampler(groups, seed=7)
    for epoch in range(3):
        running.set_epoch(epoch)
        order = list(running)
    resumed = BalancedSampler(groups, seed=7)  # a fresh sampler, as after a resume
    resumed.set_epoch(2)
    assert list(resumed) == order
    other_seed = BalancedSampler(groups, seed=8)
    other_seed.set_epoch(2)
    assert list(other_seed) != order
    # Two processes share the epoch's draws, as many each (the odd one out left over).
    shards = [BalancedSampler(groups, 7, rank, 2) for rank in (0, 1)]
    for shard in shards:
        shard.set_epoch(2)
    assert len(shards[0]) == len(shards[1]) == 22
    assert sorted([*shards[0], *shards[1]]) == sorted(order[:44])


def test_balance_source_class_balances_a_two_source_training_loader(tmp_path: Path) -> None:
    dm = ImageDataModule(_two_sources(tmp_path, balance="source_class", batch_size=64), seed=1)
    dm.setup()
    train = dm.train_split
    names = balance_groups(train, "source_class", dm.classes)[1]
    assert names == ["cifake-mini FAKE", "cifake-mini REAL", "faces-256 FAKE", "faces-256 REAL"]
    loader = dm.train_dataloader()
    drawn = np.array(list(loader.sampler))
    counts = Counter((train.sources[i], dm.classes[train.labels[i]]) for i in drawn.tolist())
    assert len(train) == len(drawn) == 928  # 900 + 28 images: an epoch draws as many
    assert sorted(counts.values()) == [232, 232, 232, 232]
    labels = torch.cat([y for _, y in loader])
    assert torch.equal(labels, train.labels[torch.from_numpy(drawn)])
    by_class = balance_groups(train, "class", dm.classes)[1]
    assert by_class == ["FAKE", "REAL"]


def test_balance_none_keeps_the_shuffled_loader_of_earlier_runs(tmp_path: Path) -> None:
    dm = ImageDataModule(_two_sources(tmp_path), seed=1)
    sampler = dm.train_dataloader().sampler
    assert isinstance(sampler, EpochShuffleSampler)
    assert sorted(sampler) == list(range(len(dm.train_split)))  # every image once


class _StopAtSecondEpoch(L.Callback):
    """A training that dies as the second epoch begins (after the first one's checkpoint)."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("stopped at the second epoch")


@pytest.mark.slow
def test_a_balanced_two_source_run_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    faces = _faces(tmp_path / "faces-256")
    recipe = [
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=3",
        "data.batch_size=32",
        "logging.mlflow=false",
        "logging.progress=none",
        "data.balance=source_class",
        f"data.extra_sources={{faces: {{source: {faces}, test_fraction: 0.2}}}}",
        f"runs_dir={tmp_path / 'runs'}",
    ]
    reference = train(compose([*recipe, "name=reference"]))
    with pytest.raises(RuntimeError, match="stopped at the second epoch"):
        train(compose([*recipe, "name=cut"]), callbacks=[_StopAtSecondEpoch()])
    cut = tmp_path / "runs" / "cut"
    assert len((cut / "metrics.csv").read_text().splitlines()) == 2  # header and epoch 0
    train(resume=cut)
    # The sampler draws by (seed, epoch) alone: the resumed epoch is the uninterrupted one.
    assert (cut / "metrics.csv").read_bytes() == (reference.run_dir / "metrics.csv").read_bytes()
