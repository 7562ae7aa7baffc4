"""Bad input gets one clear sentence, and nothing that can be decoded is lost."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_samples import image_bytes, tree_files, write_folder, write_manifest, write_zip
from PIL import Image

from realfake.data.config import DataConfig
from realfake.data.loader import SkippedImagesWarning, load_images
from realfake.errors import DataError
from realfake.train.datamodule import ImageDataModule


def _encoded(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    """Class 'a': 2 good JPEGs + corrupt, truncated, empty, text, gray, RGBA, palette, CMYK."""
    good = image_bytes(1, fmt="JPEG")
    files = {
        "a/good1.jpg": good,
        "a/good2.jpg": image_bytes(2, fmt="JPEG"),
        "a/corrupt.jpg": b"this is not a jpeg" * 10,
        "a/truncated.jpg": good[: len(good) // 2],
        "a/empty.png": b"",
        "a/notes.txt": b"labels live elsewhere",
        "a/gray.png": _encoded(Image.new("L", (9, 7), 100)),
        "a/rgba.png": _encoded(Image.new("RGBA", (8, 8), (255, 0, 0, 0))),
        "a/palette.gif": _encoded(Image.new("P", (8, 8), 3), "GIF"),
        "a/cmyk.jpg": _encoded(Image.new("CMYK", (8, 8), (0, 255, 0, 0)), "JPEG"),
        "b/good.png": image_bytes(3),
        "b/.DS_Store": b"\0\0",
    }
    return write_folder(tmp_path / "bad", files)


def test_bad_folder_loads_the_good_images_and_reports_the_rest(bad_folder: Path) -> None:
    with pytest.warns(SkippedImagesWarning, match=r"corrupt\.jpg.*empty\.png") as record:
        data = load_images(bad_folder, 8)
    part = data.splits["train"]
    assert len(part) == 7  # good1, good2, gray, rgba, palette, cmyk in a; good in b
    assert sorted(n for n in part.names if n.startswith("a/")) == [
        "a/cmyk.jpg", "a/good1.jpg", "a/good2.jpg", "a/gray.png", "a/palette.gif", "a/rgba.png"
    ]  # fmt: skip
    assert data.ignored == 2  # notes.txt and .DS_Store
    skipped = dict(data.skipped)
    assert set(skipped) == {"a/corrupt.jpg", "a/truncated.jpg", "a/empty.png"}
    assert "empty" in skipped["a/empty.png"] and "truncated" in skipped["a/truncated.jpg"]
    message = str(record[0].message)
    assert "truncated.jpg" in message and "skipped.csv" in message
    assert data.cache_path is not None
    with (data.cache_path / "skipped.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["path"] for r in rows} == set(skipped)
    # Colour modes become RGB: transparent red on white is white; CMYK (0,255,0,0) is magenta.
    images = dict(zip(part.names, part.images, strict=True))
    assert images["a/rgba.png"].unique().tolist() == [255]
    assert images["a/gray.png"].shape == (3, 8, 8) and images["a/gray.png"].unique().tolist() == [
        100
    ]
    assert images["a/cmyk.jpg"][:, 4, 4].tolist() == [255, 0, 255]


def test_strict_makes_undecodable_files_an_error(bad_folder: Path) -> None:
    with pytest.raises(DataError, match=r"3 files .*corrupt\.jpg.*strict") as info:
        load_images(bad_folder, 8, strict=True)
    assert "\n" not in str(info.value)


def test_half_transparent_pixels_are_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    root = write_folder(
        tmp_path / "t",
        {"x.png": _encoded(rgba), "la.png": _encoded(Image.new("LA", (4, 4), (0, 0)))},
    )
    data = load_images(root, 4)
    images = dict(
        zip(data.splits["unlabelled"].names, data.splits["unlabelled"].images, strict=True)
    )
    assert images["x.png"][:, 0, 0].tolist() == [255, 127, 127]
    assert images["la.png"].unique().tolist() == [255]


def _one_sentence(exc: pytest.ExceptionInfo[DataError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "expected" in text
    return text


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as exc:
        load_images(tmp_path / "nowhere")
    _one_sentence(exc)


def test_empty_class_folder(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "r", {"cat/1.png": image_bytes(1), "dog/readme.txt": b"x"})
    (root / "bird").mkdir()
    with pytest.raises(
        DataError, match=r"class folder bird/ .* holds no images \(and 1 more empty class folders\)"
    ) as exc:
        load_images(root)
    _one_sentence(exc)
    tree = write_zip(tmp_path / "s.zip", {"train/cat/1.png": image_bytes(1), "train/dog/": b""})
    with pytest.raises(DataError, match="train/dog/"):
        load_images(tree)


def test_single_class_cannot_be_trained_on(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "r", {f"cat/{i}.png": image_bytes(i) for i in range(4)})
    dm = ImageDataModule(DataConfig(source=str(root)))
    with pytest.raises(DataError, match=r"1 class .*expected at least two classes") as exc:
        dm.setup()
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"notes.txt": b"x", "train/a.csv": b"y"}, "found no images .*2 other files"),
        ({"x.png": None, "cat/y.png": None}, "directly in .* next to folders"),
        (
            {"train/cat/x.png": None, "extra/cat/y.png": None},
            r"split folders \['train'\] next to other",
        ),
        ({"train/x.png": None, "train/cat/y.png": None}, "directly in train/"),
        (
            {"train/cat/x.png": None, "test/bird/y.png": None},
            r"test .* has classes \['bird'\] that train lacks",
        ),
    ],
)
def test_archive_without_the_expected_layout(tmp_path: Path, files: dict, match: str) -> None:
    files = {k: v if v is not None else image_bytes(i) for i, (k, v) in enumerate(files.items())}
    with pytest.raises(DataError, match=match) as exc:
        load_images(write_zip(tmp_path / "bad.zip", files))
    _one_sentence(exc)


def test_manifest_naming_missing_files(tmp_path: Path) -> None:
    csv_path = write_manifest(tmp_path / "m" / "labels.csv", tree_files(splits=False))
    with csv_path.open("a") as f:
        f.write("gone/1.png,cat\ngone/2.png,dog\n")
    with pytest.raises(
        DataError, match=r"names 2 files that do not exist \(gone/1.png, gone/2.png\)"
    ) as exc:
        load_images(csv_path)
    _one_sentence(exc)


def test_manifest_with_wrong_columns_or_splits(tmp_path: Path) -> None:
    (tmp_path / "1.png").write_bytes(image_bytes(1))
    (tmp_path / "cols.csv").write_text("file,label\n1.png,cat\n")
    with pytest.raises(DataError, match="expected a header row with 'path'"):
        load_images(tmp_path / "cols.csv")
    (tmp_path / "split.csv").write_text("path,label,split\n1.png,cat,training\n")
    with pytest.raises(DataError, match=r"split values \['training'\]"):
        load_images(tmp_path / "split.csv")


def test_files_that_are_not_sources(tmp_path: Path) -> None:
    (tmp_path / "fake.zip").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not a readable zip"):
        load_images(tmp_path / "fake.zip")
    (tmp_path / "data.xyz").write_bytes(b"?")
    with pytest.raises(DataError, match="unknown type"):
        load_images(tmp_path / "data.xyz")


def test_corrupt_member_inside_a_zip_is_skipped(tmp_path: Path) -> None:
    files = {
        "cat/1.png": image_bytes(1),
        "cat/2.png": b"\x89PNG broken",
        "dog/1.png": image_bytes(2),
    }
    path = write_zip(tmp_path / "z.zip", files)
    with pytest.warns(SkippedImagesWarning, match="cat/2.png"):
        data = load_images(path)
    assert data.splits["train"].names == ["cat/1.png", "dog/1.png"]
    assert zipfile.is_zipfile(path)
    assert np.array_equal(data.splits["train"].labels.numpy(), [0, 1])
