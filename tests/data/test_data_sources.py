"""Every layout and container is read by the one loader with identical results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_samples import (
    CLASSES,
    COUNTS,
    image_bytes,
    tree_files,
    write_folder,
    write_manifest,
    write_tar,
    write_zip,
)

from realfake.data.layout import CIFAKE_CLASSES
from realfake.data.loader import LoadedData, load_images
from realfake.errors import DataError


def _same(a: LoadedData, b: LoadedData, names: bool = True) -> None:
    assert a.classes == b.classes
    assert list(a.splits) == list(b.splits)
    for split in a.splits:
        x, y = a.splits[split], b.splits[split]
        assert torch.equal(x.images, y.images), split
        assert torch.equal(x.labels, y.labels), split
        if names:
            assert x.names == y.names
    if names:
        assert a.content_hash == b.content_hash


@pytest.fixture
def split_sources(tmp_path: Path) -> dict[str, Path]:
    files = tree_files(splits=True)
    return {
        "folder": write_folder(tmp_path / "folder", files),
        "wrapped folder": write_folder(
            tmp_path / "wrapped", {f"cifake/{k}": v for k, v in files.items()}
        ),
        "zip": write_zip(tmp_path / "set.zip", files),
        "kaggle zip": write_zip(tmp_path / "kaggle.zip", files, prefix="archive/"),
        "tar": write_tar(tmp_path / "set.tar", files),
        "tar.gz": write_tar(tmp_path / "set.tar.gz", files, prefix="./", mode="w:gz"),
        "manifest": write_manifest(tmp_path / "manifest" / "labels.csv", files),
    }


def test_split_tree_is_identical_in_every_container(split_sources: dict[str, Path]) -> None:
    reference = load_images(split_sources["folder"], 16)
    assert list(reference.splits) == ["train", "val", "test"]
    assert reference.classes == list(CLASSES)
    for split, n in COUNTS.items():
        part = reference.splits[split]
        assert part.images.shape == (2 * n, 3, 16, 16) and part.images.dtype == torch.uint8
        assert part.labels.tolist() == [0] * n + [1] * n
        assert part.names[0].startswith(f"{split}/cat/")
    for kind, path in split_sources.items():
        loaded = load_images(path, 16)
        _same(reference, loaded)
        assert loaded.fingerprint != reference.fingerprint or kind == "folder"


def test_image_folder_is_identical_in_every_container(tmp_path: Path) -> None:
    files = tree_files(splits=False)
    reference = load_images(write_folder(tmp_path / "folder", files), 16)
    assert list(reference.splits) == ["train"] and reference.layout == "image_folder"
    assert len(reference.splits["train"]) == 16
    for path in (
        write_zip(tmp_path / "a.zip", files, prefix="top/"),
        write_tar(tmp_path / "a.tar", files),
        write_manifest(tmp_path / "m" / "labels.csv", files),
    ):
        _same(reference, load_images(path, 16))
    absolute = load_images(
        write_manifest(tmp_path / "abs" / "labels.csv", files, absolute=True), 16
    )
    _same(reference, absolute, names=False)
    assert Path(absolute.splits["train"].names[0]).is_absolute()


def test_flat_folder_is_unlabelled_and_labelled_false_reads_everything(tmp_path: Path) -> None:
    flat = write_folder(tmp_path / "flat", {f"{i}.png": image_bytes(i) for i in range(3)})
    data = load_images(flat)
    assert list(data.splits) == ["unlabelled"] and data.classes == []
    assert data.splits["unlabelled"].labels.tolist() == [-1, -1, -1]
    tree = write_tar(tmp_path / "t.tar", tree_files(splits=True))
    everything = load_images(tree, labelled=False)
    part = everything.splits["unlabelled"]
    assert len(part) == 2 * sum(COUNTS.values())
    assert part.names[0].startswith("test/cat/")  # names kept as they are in the archive
    with pytest.raises(DataError, match="no class folders"):
        load_images(flat, labelled=True)


def test_single_image_file_is_a_source(tmp_path: Path) -> None:
    path = tmp_path / "one.jpg"
    path.write_bytes(image_bytes(1, size=(40, 30), fmt="JPEG"))
    data = load_images(path)
    assert data.splits["unlabelled"].images.shape == (1, 3, 32, 32)
    assert data.splits["unlabelled"].names == ["one.jpg"]


def test_cifake_order_is_fake_then_real(tmp_path: Path) -> None:
    files = {
        f"train/{c}/{i}.png": image_bytes(i + 10 * len(c))
        for c in ("REAL", "FAKE")
        for i in range(2)
    }
    data = load_images(write_folder(tmp_path / "c", files))
    assert list(CIFAKE_CLASSES) == ["FAKE", "REAL"] == data.classes
    labels = dict(
        zip(data.splits["train"].names, data.splits["train"].labels.tolist(), strict=True)
    )
    assert labels["train/FAKE/0.png"] == 0 and labels["train/REAL/0.png"] == 1


def test_classes_option_imposes_an_order_or_names_both_lists(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", tree_files(splits=False))
    data = load_images(root, classes=["dog", "cat"])
    assert data.classes == ["dog", "cat"]
    names = data.splits["train"].names
    assert all(
        (lab == 1) == n.startswith("cat/")
        for n, lab in zip(names, data.splits["train"].labels.tolist(), strict=True)
    )
    with pytest.raises(DataError, match=r"\['cat', 'dog'\].*\['FAKE', 'REAL'\]"):
        load_images(root, classes=["FAKE", "REAL"])


def test_test_split_without_train_keeps_its_classes(tmp_path: Path) -> None:
    files = {k: v for k, v in tree_files(splits=True).items() if k.startswith("test/")}
    data = load_images(write_tar(tmp_path / "test.tar", files))
    assert list(data.splits) == ["test"] and data.classes == list(CLASSES)
