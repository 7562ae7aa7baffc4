"""Caches keyed by what a file holds, and outputs that follow the umask like any tool's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from realfake.data.layout import UNLABELLED
from realfake.data.loader import load_images


def _bmp(path: Path, colour: tuple[int, int, int]) -> None:
    Image.new("RGB", (32, 32), colour).save(path, format="BMP")  # same size in bytes


def test_a_file_replaced_by_same_size_bytes_and_mtime_gets_a_fresh_answer(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    image = folder / "a.bmp"
    _bmp(image, (250, 10, 10))
    first = load_images(folder, 32, "stretch", labelled=False).splits[UNLABELLED].images
    st = image.stat()
    replaced = tmp_path / "b.bmp"
    _bmp(replaced, (10, 10, 250))
    assert replaced.stat().st_size == st.st_size
    os.replace(replaced, image)  # new bytes, same size, and the old mtime set back
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert image.stat().st_mtime_ns == st.st_mtime_ns
    again = load_images(folder, 32, "stretch", labelled=False).splits[UNLABELLED].images
    assert int(first[0, 0].float().mean()) > 200 and int(again[0, 2].float().mean()) > 200
    assert not np.array_equal(first.numpy(), again.numpy())
    # Rewritten in place (same inode, same size, mtime set back): still a fresh answer.
    with image.open("r+b") as fh:
        fh.seek(0)
        data = fh.read()
        fh.seek(0)
        _bmp(tmp_path / "c.bmp", (10, 250, 10))
        fh.write((tmp_path / "c.bmp").read_bytes()[: len(data)])
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    third = load_images(folder, 32, "stretch", labelled=False).splits[UNLABELLED].images
    assert int(third[0, 1].float().mean()) > 200


def test_files_are_created_0644_under_umask_022(tmp_path):
    """A run's files, written atomically (mkstemp makes 0600), are readable by others."""
    script = (
        "import os, sys; os.umask(0o022)\n"
        "from realfake.atomic import write_text\n"
        "from realfake.runs import write_json\n"
        "write_text(sys.argv[1] + '/model.onnx.txt', 'x')\n"
        "write_json(sys.argv[1] + '/model.json', {'a': 1})\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    for name in ("model.onnx.txt", "model.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
