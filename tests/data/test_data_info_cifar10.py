"""``data info`` statistics and the CIFAR-10 set derived from CIFAKE's file names."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_samples import image_bytes, write_folder, write_tar

from realfake.data.cifar10 import CIFAR10_CLASSES, cifar10_class, export_cifar10
from realfake.data.info import describe_source
from realfake.data.loader import load_images
from realfake.errors import DataError


def _cifake_like() -> dict[str, bytes]:
    """A tiny CIFAKE-shaped tree; test/FAKE copies a train file and holds a duplicate pair."""
    files = {}
    seed = 0
    for split, n in (("train", 12), ("test", 4)):
        for label in ("REAL", "FAKE"):
            for i in range(n):
                k = i % 10 + 1
                name = f"{i}.jpg" if k == 1 else f"{i} ({k}).jpg"
                seed += 1
                files[f"{split}/{label}/{name}"] = image_bytes(seed, fmt="JPEG")
    files["test/FAKE/0.jpg"] = files["train/FAKE/3 (4).jpg"]
    files["test/FAKE/2 (3).jpg"] = files["test/FAKE/1 (2).jpg"]
    return files


def test_describe_counts_sizes_and_duplicates(tmp_path: Path) -> None:
    files = _cifake_like()
    files["train/REAL/odd.png"] = image_bytes(1, size=(20, 10))
    info = describe_source(write_folder(tmp_path / "c", files))
    assert info.counts == {"train": {"FAKE": 12, "REAL": 13}, "test": {"FAKE": 4, "REAL": 4}}
    assert info.sizes == {"12×10": 32, "20×10": 1}
    assert list(info.within) == ["test"]
    assert list(info.within["test"].values()) == [["test/FAKE/1 (2).jpg", "test/FAKE/2 (3).jpg"]]
    assert list(info.across.values()) == [
        [("test", "test/FAKE/0.jpg"), ("train", "train/FAKE/3 (4).jpg")]
    ]
    assert info.train_in_test == 1 and info.total == 33


def test_cifar10_class_from_file_name() -> None:
    assert cifar10_class("0000.jpg") == "airplane"
    assert cifar10_class("12 (2).jpg") == "automobile"
    assert cifar10_class("0000 (10).jpg") == "truck"
    assert list(CIFAR10_CLASSES).index("dog") == 5
    for bad in ("cat.jpg", "12 (11).jpg", "12 (0).jpg"):
        with pytest.raises(DataError, match="CIFAKE's naming"):
            cifar10_class(bad)


def test_export_cifar10_from_a_tar(tmp_path: Path) -> None:
    source = write_tar(tmp_path / "cifake.tar", _cifake_like(), prefix="archive/")
    counts = export_cifar10(source, tmp_path / "c10", "dog,automobile,truck")
    assert counts == {
        "train": {"automobile": 2, "dog": 1, "truck": 1},  # 1 (2) and 11 (2)
        "test": {"automobile": 1, "dog": 0, "truck": 0},
    }
    assert (tmp_path / "c10" / "train" / "dog" / "5 (6).jpg").is_file()
    data = load_images(tmp_path / "c10")
    assert data.classes == ["automobile", "dog", "truck"] and len(data.splits["train"]) == 4
    with pytest.raises(DataError, match="not empty"):
        export_cifar10(source, tmp_path / "c10")
    with pytest.raises(DataError, match="unknown CIFAR-10 classes"):
        export_cifar10(source, tmp_path / "other", ["dogs"])
