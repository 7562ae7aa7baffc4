"""Fixtures of the service tests: images, hostile uploads, and the app of the tiny run."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install realfake[serve])"
)
pytest.importorskip("multipart", reason="the serve extra is not installed (python-multipart)")

from fastapi.testclient import TestClient

from realfake.serve import ServeSettings, create_app

# Small limits, so the limit tests send kilobytes, not megabytes.
SETTINGS = ServeSettings(max_files=4, max_body_bytes=256 * 1024, max_pixels=4_000_000)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height RGB pixels and whose data holds almost none.

    Decoding it would fail (truncated) or, for a real bomb, allocate width×height×3 bytes; a
    service that checks the header first refuses it as too large instead.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def png_bytes(width: int = 48, height: int = 40, colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def test_images() -> dict[str, list[Path]]:
    """The embedded CIFAKE test images by class."""
    from realfake.data.embedded import embedded_data_path

    root = embedded_data_path() / "test"
    return {c: sorted((root / c).glob("*.jpg")) for c in ("FAKE", "REAL")}


@pytest.fixture(scope="session")
def two_images(test_images) -> list[Path]:
    return [test_images["FAKE"][0], test_images["REAL"][0]]


def wait_ready(client: TestClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.02)


@pytest.fixture(scope="session")
def frozen_run(frozen) -> Path:
    """The tiny run with a threshold frozen for its weights (it decides unlike the arg-max)."""
    return frozen[0]


@pytest.fixture(scope="module")
def client(frozen_run):
    """The app of the frozen tiny run, ready, in this process."""
    app = create_app(str(frozen_run), SETTINGS)
    with TestClient(app, raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def onnx_client(tiny_onnx):
    """The app of the frozen tiny run exported to ONNX, ready, in this process."""
    with TestClient(create_app(str(tiny_onnx), SETTINGS), raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c
