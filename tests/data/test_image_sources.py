"""Every image knows its source: the data set's name, a folder level of its path, a CSV column."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from data_samples import image_bytes, tree_files, write_folder, write_tar, write_zip

from realfake.data.config import DataConfig
from realfake.data.dataset import load_splits
from realfake.data.embedded import embedded_data_path
from realfake.data.loader import dataset_name, load_images
from realfake.errors import DataError


def _generators(root_of: str = "source") -> dict[str, bytes]:
    """Two generators' images, laid out by ``root_of``: <gen>/<class>/ or <class>/<gen>/.

    Both generators hold a file of the same name in each class, as real generator folders do.
    """
    files, seed = {}, 100
    for gen in ("sd14", "midjourney"):
        for cls in ("FAKE", "REAL"):
            for i in range(3):
                seed += 1
                path = f"{gen}/{cls}" if root_of == "source" else f"{cls}/{gen}"
                files[f"{path}/{i}.png"] = image_bytes(seed)
    return files


def _entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


def test_a_data_set_names_its_images_after_its_file_or_folder(tmp_path: Path) -> None:
    files = tree_files(splits=False)
    sample = tmp_path / "cifake-sample"
    sample.mkdir()
    sources = {
        "cifake-mini": None,  # the embedded set
        "my-set": write_folder(tmp_path / "my-set", files),
        "archive": write_zip(tmp_path / "archive.zip", files),
        "faces.v2": write_tar(tmp_path / "faces.v2.tar.gz", files, mode="w:gz"),
        # A split's archive is named after the folder that holds it.
        "cifake-sample": write_tar(sample / "train.tar", files),
    }
    for name, source in sources.items():
        assert dataset_name(source) == name
        data = load_images(source, 16)
        for split in data.splits.values():
            assert split.sources == [name] * len(split), name
    renamed = load_images(sources["my-set"], 16, source_name="camera")
    assert set(renamed.splits["train"].sources) == {"camera"}


def test_a_source_level_above_the_classes_names_sources_and_leaves_the_classes(
    tmp_path: Path,
) -> None:
    files = _generators("source")
    for source in (
        write_folder(tmp_path / "gens", files),
        write_tar(tmp_path / "gens.tar", files),
        write_zip(tmp_path / "gens.zip", files, prefix="archive/"),
    ):
        level = 1 if source.suffix == ".zip" else 0  # archive/<gen>/<class>/<image>
        data = load_images(source, 16, source_level=level)
        train = data.splits["train"]
        assert data.classes == ["FAKE", "REAL"], source
        # Same file names in both generators: every image is there, under its whole path.
        assert len(train) == 12 and len(set(train.names)) == 12
        for name, label, src in zip(train.names, train.labels.tolist(), train.sources, strict=True):
            parts = name.split("/")
            assert src == parts[level] and data.classes[label] == parts[level + 1], name
        assert train.sources.count("sd14") == train.sources.count("midjourney") == 6


def test_a_source_level_inside_the_class_folders_keeps_the_labels(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "by-class", _generators("class"))
    plain = load_images(root, 16).splits["train"]
    named = load_images(root, 16, source_level=1).splits["train"]
    assert named.names == plain.names and torch.equal(named.labels, plain.labels)
    assert torch.equal(named.images, plain.images)
    assert named.sources == [n.split("/")[1] for n in named.names]
    assert set(plain.sources) == {"by-class"}


def test_a_source_level_over_split_trees_keeps_their_splits(tmp_path: Path) -> None:
    files = {f"{gen}/{k}": v for gen in ("a", "b") for k, v in tree_files(splits=True).items()}
    data = load_images(write_folder(tmp_path / "split-gens", files), 16, source_level=0)
    assert list(data.splits) == ["train", "val", "test"]
    assert data.classes == ["cat", "dog"]
    for split in data.splits.values():
        assert sorted(set(split.sources)) == ["a", "b"]


def test_an_image_without_a_folder_at_the_source_level_is_named(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "flat-classes", tree_files(splits=False))
    with pytest.raises(DataError, match=r"image cat/0 \(1\)\.png .* no folder at level 1.*"):
        load_images(root, 16, source_level=1)


def test_a_manifest_names_each_rows_source_in_its_source_column(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_folder(folder, {f"img/{i}.png": image_bytes(i) for i in range(6)})
    rows = [
        (f"img/{i}.png", "FAKE" if i % 2 else "REAL", "sd14" if i < 3 else "camera")
        for i in range(6)
    ]

    def manifest(name: str, table: list[tuple[str, ...]], header=("path", "label", "source")):
        path = folder / name
        with path.open("w", newline="") as fh:
            csv.writer(fh).writerows([header, *table])
        return path

    data = load_images(manifest("labels.csv", rows), 16)
    train = data.splits["train"]
    assert dict(zip(train.names, train.sources, strict=True)) == {p: s for p, _, s in rows}
    holes = [*rows[:5], (rows[5][0], rows[5][1], "")]
    with pytest.raises(DataError, match=r"'source' column but 1 rows without one .*img/5\.png"):
        load_images(manifest("holes.csv", holes), 16)
    with pytest.raises(DataError, match="is a manifest; name each image's source in a 'source'"):
        load_images(manifest("level.csv", rows), 16, source_level=0)
    # Without the column every row has the manifest's name.
    plain = load_images(manifest("plain.csv", [r[:2] for r in rows], ("path", "label")), 16)
    assert set(plain.splits["train"].sources) == {"plain"}


def test_naming_sources_never_decodes_again(tmp_path: Path, cache_env: Path) -> None:
    root = write_folder(tmp_path / "set", tree_files(splits=True))
    first = load_images(root, 16)
    entries = _entries(cache_env)
    again = load_images(root, 16, source_name="another-name")
    cfg = DataConfig(source=str(root), image_size=16, source_name="third")
    splits = load_splits(cfg)
    # One cache entry, one fingerprint: the names of the sources change nothing decoded.
    assert _entries(cache_env) == entries and len(entries) == 1
    assert again.fingerprint == first.fingerprint == splits.fingerprint
    assert set(splits.test.sources) == {"third"}
    assert torch.equal(again.splits["train"].images, first.splits["train"].images)


def test_the_test_source_and_carved_splits_keep_the_data_sets_name(tmp_path: Path) -> None:
    mini = embedded_data_path()
    cfg = DataConfig(source=str(mini / "train"), test_source=str(mini / "test"))
    splits = load_splits(cfg)
    for split in (splits.train, splits.val, splits.test):
        assert split.sources == ["cifake-mini"] * len(split)
    copy = shutil.copytree(mini / "train", tmp_path / "mine")
    carved = load_splits(DataConfig(source=str(copy), test_fraction=0.2, source_name="cam"))
    assert {s for part in (carved.train, carved.val, carved.test) for s in part.sources} == {"cam"}
