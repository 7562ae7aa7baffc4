"""``realfake data info`` and ``realfake data cifar10`` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_samples import image_bytes, write_folder, write_zip

from realfake.cli import main
from realfake.data.embedded import embedded_data_path


def test_info_on_the_embedded_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert "embedded CIFAKE mini" in out and "split tree" in out
    assert "│ train │  500 │  500 │ 1,000 │" in out and "│ test  │  100 │  100 │   200 │" in out
    assert "32×32: 1,200" in out and "classes (label order): FAKE, REAL" in out
    assert "fingerprint:" in out


def test_info_reports_skips_and_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = image_bytes(1)
    files = {
        "a/1.png": same,
        "a/2.png": same,
        "b/1.png": image_bytes(2),
        "b/bad.png": b"",
        "b/x.txt": b"x",
    }
    zip_path = write_zip(tmp_path / "d.zip", files, prefix="wrapper/")
    with pytest.warns(UserWarning, match="bad.png"):
        assert main(["data", "info", str(zip_path), "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "image folder" in out and "ignored non-image files: 1" in out
    assert "skipped (failed to decode): 1" in out and "b/bad.png: empty file" in out
    assert "inside train" in out and "a/1.png | a/2.png" in out


def test_info_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(tmp_path / "missing.zip")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data source") and "\n" not in err


def test_strict_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_folder(tmp_path / "r", {"a/1.png": image_bytes(1), "b/2.png": b"broken"})
    assert main(["data", "info", str(root), "--strict"]) == 2
    assert "b/2.png" in capsys.readouterr().err


def test_cifar10_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {
        f"test/REAL/{i} ({k}).jpg": image_bytes(10 * i + k, fmt="JPEG")
        for i in range(2)
        for k in (2, 6, 7)
    }
    files["test/FAKE/0 (6).jpg"] = image_bytes(99, fmt="JPEG")
    src = write_folder(tmp_path / "cifake", files)
    assert (
        main(["data", "cifar10", str(src), str(tmp_path / "out"), "--classes", "dog,automobile"])
        == 0
    )
    out = capsys.readouterr().out
    assert "test: 4 images (automobile 2, dog 2)" in out
    assert sorted(p.name for p in (tmp_path / "out" / "test" / "dog").iterdir()) == [
        "0 (6).jpg",
        "1 (6).jpg",
    ]
    assert main(["data", "cifar10", str(src), str(tmp_path / "x"), "--classes", "wolf"]) == 2


def test_embedded_set_ships_with_its_attribution() -> None:
    root = embedded_data_path()
    counts = {p.relative_to(root).as_posix(): len(list(p.glob("*.jpg"))) for p in root.glob("*/*")}
    assert counts == {"train/FAKE": 500, "train/REAL": 500, "test/FAKE": 100, "test/REAL": 100}
    text = (root / "ATTRIBUTION.md").read_text()
    assert "Bird" in text and "MIT" in text and "Krizhevsky" in text
