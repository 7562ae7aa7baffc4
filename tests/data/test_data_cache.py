"""Decode once: later loads read the cache; a different preprocessing is a different entry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_samples import image_bytes, tree_files, write_folder, write_tar
from PIL import Image

from realfake.data import build, decode
from realfake.data.cache import default_cache_dir
from realfake.data.loader import load_images


def _no_decoding(*args: object, **kwargs: object) -> None:
    raise AssertionError("decoded although the cache should have been used")


def test_second_load_does_no_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_tar(tmp_path / "s.tar", tree_files())
    first = load_images(source, 16)
    monkeypatch.setattr(decode, "decode_chunk", _no_decoding)
    second = load_images(source, 16)
    assert second.fingerprint == first.fingerprint
    assert torch.equal(first.splits["train"].images, second.splits["train"].images)
    assert second.cache_path == first.cache_path
    assert (second.cache_path / "train.images.npy").is_file()


def test_default_cache_dir_follows_the_environment(cache_env: Path) -> None:
    assert default_cache_dir() == cache_env
    data = load_images(None)
    assert data.cache_path is not None and data.cache_path.parent == cache_env


def test_new_size_or_policy_or_files_make_a_new_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_folder(tmp_path / "r", tree_files(splits=False))
    base = load_images(root, 16)
    bigger = load_images(root, 24)
    cropped = load_images(root, 16, "center_crop")
    assert len({base.fingerprint, bigger.fingerprint, cropped.fingerprint}) == 3
    assert bigger.splits["train"].images.shape[-2:] == (24, 24)
    changed = root / "cat" / "0 (1).png"
    changed.write_bytes(image_bytes(999))
    os.utime(changed, ns=(1, 1))
    assert load_images(root, 16).fingerprint != base.fingerprint


def test_a_crash_while_building_leaves_no_entry(
    tmp_path: Path, cache_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_folder(tmp_path / "r", tree_files(splits=False))

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(decode, "decode_chunk", crash)
    with pytest.raises(KeyboardInterrupt):
        load_images(source)
    assert list(cache_env.iterdir()) == []  # no entry and no temporary folder
    monkeypatch.undo()
    assert len(load_images(source).splits["train"]) == 16


def test_parallel_decoding_equals_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_tar(tmp_path / "s.tar", tree_files())
    inline = load_images(source, 16, cache_dir=tmp_path / "one", workers=1)
    pools = []

    class CountingPool(build.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(kwargs["max_workers"])
            super().__init__(*args, **kwargs)

    # Chunks of 4 images over 2 processes; results come back in archive order.
    monkeypatch.setattr(build, "CHUNK", 4)
    monkeypatch.setattr(build, "ProcessPoolExecutor", CountingPool)
    parallel = load_images(source, 16, cache_dir=tmp_path / "two", workers=2)
    assert pools == [2]
    for split in inline.splits:
        assert torch.equal(inline.splits[split].images, parallel.splits[split].images)
        assert inline.splits[split].names == parallel.splits[split].names
    assert inline.content_hash == parallel.content_hash


@pytest.mark.parametrize("size", [96, 224])
def test_large_sizes(tmp_path: Path, size: int) -> None:
    root = write_folder(
        tmp_path / "r", {f"c{i % 2}/{i}.jpg": image_bytes(i, (300, 200), "JPEG") for i in range(4)}
    )
    data = load_images(root, size)
    assert data.splits["train"].images.shape == (4, 3, size, size)


def test_resize_policies(tmp_path: Path) -> None:
    # 30×10: left third black, middle third gray, right third white.
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, 10:20] = 128
    pixels[:, 20:] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    stretch = load_images(path, 10, "stretch").splits["unlabelled"].images[0]
    crop = load_images(path, 10, "center_crop").splits["unlabelled"].images[0]
    assert stretch[:, :, 0].max() < 10 and stretch[:, :, -1].min() > 245  # all three bands
    assert crop.unique().tolist() == [128]  # only the centred square


def test_embedded_set_loads_from_a_shared_cache(shared_cache: Path) -> None:
    data = load_images(None, cache_dir=shared_cache)
    assert data.classes == ["FAKE", "REAL"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 1000, "test": 200}
    assert data.splits["train"].labels.bincount().tolist() == [500, 500]
    assert data.skipped == [] and data.ignored == 1  # ATTRIBUTION.md
