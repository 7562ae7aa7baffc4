"""Uploaded bytes -> the network's input, off the event loop; hostile files refused with a reason.

Every upload goes through ``Decoder.prepare``: its header is read first (Pillow's ``Image.open``
reads only the header) and an image declaring more than ``max_pixels`` is refused before a byte
of pixel data is decoded, whatever its size in bytes; then the decoder ``realfake predict``
uses, so the same file gets the same pixels and, when it cannot be decoded, the same
``describe_failure`` sentence: the data layer's ``decode_image`` at the network's size, or the
predictor's ``native`` for a model that scores native tiles. Both steps run in a small thread
pool: a 38 KB PNG declaring 6300×6300 pixels takes ~0.4 s to decode, and 16 of them on the
event loop stalled every other request (/health included) for 6 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import io
import platform
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import torch
from PIL import Image

from realfake.data.decode import decode_image, describe_failure
from realfake.errors import DataError

# Over this many declared pixels an upload is "large": it decodes in the large lane (at most
# ``large_decodes`` at once), and the heap is trimmed once none is left. 4 MP is a 2560×1600
# screenshot, ~12 MB of RGB; CIFAKE's 32 px images are 1,024 pixels.
LARGE_PIXELS = 4_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class ImageRefused(Exception):
    """An upload that is not an image we accept: the HTTP status and why."""

    status: int  # 415 not an image, 413 too many pixels, 422 empty
    kind: str  # not_an_image | too_many_pixels | empty
    reason: str


def declared_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) as the file's header declares it; refused when over ``max_pixels``."""
    if not data:
        raise ImageRefused(422, "empty", "empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fires inside open() for images over twice its MAX_IMAGE_PIXELS;
        # the answer cites this service's limit, which is the one the client can act on.
        raise ImageRefused(413, "too_many_pixels", _bomb_reason(exc, max_pixels)) from None
    except MemoryError:
        raise
    except Exception as exc:  # every decoder failure is this file's, never the request's
        raise ImageRefused(415, "not_an_image", describe_failure(exc)) from None
    if width * height > max_pixels:
        raise ImageRefused(
            413,
            "too_many_pixels",
            f"declares {width}×{height} = {width * height:,} pixels; the limit is "
            f"{max_pixels:,} pixels",
        )
    return width, height


def check_png_data(data: bytes, width: int, height: int) -> None:
    """Refuse a PNG whose compressed pixel data is too short to hold the pixels it declares.

    PNG pixel data is deflated, and deflate expands at most 1032:1 (zlib's documented maximum).
    A file declaring 6300×6300 RGB pixels with 64 bytes of data is truncated or forged; Pillow
    would first allocate and zero its 119 MB (42 ms of CPU a request in the server, measured),
    then fail. Only a cheap walk over the chunk headers here; anything unusual is left to Pillow.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 33:
        return
    depth, colour = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if channels is None:
        return
    raw = height * (1 + (width * channels * depth + 7) // 8)  # a filter byte per row
    held, at = 0, 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            held += min(length, len(data) - at - 8)
        if kind == b"IEND":
            break
        at += 12 + length
    # 1100 rather than 1032: a margin, so no image a PNG encoder can write is ever refused.
    if held * 1100 < raw:
        failure = OSError(
            f"image file is truncated: {held:,} bytes of pixel data cannot hold "
            f"{width}×{height} pixels"
        )
        raise ImageRefused(415, "not_an_image", describe_failure(failure))


def decode_upload(data: bytes, size: int, resize: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """3×size×size uint8 of an upload and its original (width, height), by the data layer's
    decoder (the pixels and sizes predict reads); 415 with its reason."""
    try:
        array, original = decode_image(data, size, resize)
    except MemoryError:
        raise
    # Decoders raise many types (OSError, SyntaxError, ValueError, NotImplementedError for a
    # DDS header, struct.error, ...): each is a refusal of this file, as `realfake predict`
    # turns each into an error row.
    except Exception as exc:
        raise ImageRefused(415, "not_an_image", describe_failure(exc)) from None
    return torch.from_numpy(array.copy()), original


def decode_native_upload(data: bytes, native: Callable[[bytes], torch.Tensor]) -> torch.Tensor:
    """3×H×W uint8 of an upload at its own size, by the predictor's ``native``; 415 with why."""
    try:
        return native(data)
    except MemoryError:
        raise
    except DataError as exc:  # "image bytes (N bytes): why": the why is the client's to read
        raise ImageRefused(415, "not_an_image", str(exc).split(": ", 1)[-1]) from None
    except Exception as exc:  # as decode_upload: every decoder failure refuses this file
        raise ImageRefused(415, "not_an_image", describe_failure(exc)) from None


def _bomb_reason(exc: Exception, max_pixels: int) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow opens"
    return f"declares {declared}; the limit is {max_pixels:,} pixels"


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's malloc_trim, or None elsewhere (musl, macOS, Windows)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return None if name is None else ctypes.CDLL(name).malloc_trim


def give_back_memory() -> None:
    """Return the heap's free pages to the system (glibc); a no-op elsewhere.

    glibc keeps freed memory in its arenas: after 8 clients × 4 uploads of 36 MP PNGs the
    server's RSS stayed ~1 GB above its plateau without this (BENCHMARKS.md, "Serving: hostile
    clients and large uploads").
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Decoder:
    """Decodes uploads in ``threads`` threads, at most ``large`` of them over LARGE_PIXELS."""

    def __init__(self, max_pixels: int, threads: int, large: int) -> None:
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="realfake-decode")
        # Waiting happens here, on the event loop, not in the pool's queue: a request that is
        # abandoned while it waits leaves no work behind, and the pool never holds a backlog.
        self._slots = asyncio.Semaphore(threads)
        self._large = asyncio.Semaphore(large)
        self._large_pending = 0  # large uploads decoding or waiting to

    async def prepare(self, data: bytes, decode: Callable[[bytes], T]) -> T:
        """``decode(data)`` once the header passed, off the loop; ImageRefused says why not."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            small = await loop.run_in_executor(self._pool, self._small, data, decode)
        if small is not None:
            return small
        self._large_pending += 1
        try:
            async with self._large, self._slots:
                return await loop.run_in_executor(self._pool, decode, data)
        finally:
            self._large_pending -= 1
            # Once no large upload is left: trimming after each one of a burst made the next
            # fault its ~160 MB back in (40 ms of CPU per 6300×6300 PNG, measured).
            if self._large_pending == 0:
                with contextlib.suppress(RuntimeError):  # the service is stopping
                    self._pool.submit(give_back_memory)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _small(self, data: bytes, decode: Callable[[bytes], T]) -> T | None:
        """Decoded when the header declares a small image (one hop), else None (large lane)."""
        width, height = declared_size(data, self.max_pixels)
        if width * height > LARGE_PIXELS:
            check_png_data(data, width, height)  # before it queues for the large lane
            return None
        return decode(data)
