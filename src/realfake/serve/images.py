"""Uploaded bytes -> the network's input; hostile files refused with a status and a reason."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from realfake.errors import DataError


@dataclass(frozen=True)
class ImageRefused(Exception):
    """An upload that is not an image we accept: the HTTP status and why."""

    status: int  # 415 not an image, 413 too many pixels, 422 empty
    kind: str  # not_an_image | too_many_pixels | empty
    reason: str


def prepare_upload(predictor: Any, data: bytes, max_pixels: int) -> torch.Tensor:
    """3×S×S uint8 of an uploaded file; its declared size is checked before any pixel is decoded.

    Pillow reads only the header in ``Image.open``; a PNG that declares 20000×20000 pixels is
    refused here, before the 1.2 GB decode it asks for.
    """
    if not data:
        raise ImageRefused(422, "empty", "empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (twice MAX_IMAGE_PIXELS) fires in open() for the largest bombs.
        raise ImageRefused(413, "too_many_pixels", str(exc).split(".")[0]) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageRefused(415, "not_an_image", "not a recognised image format") from None
    if width * height > max_pixels:
        raise ImageRefused(
            413,
            "too_many_pixels",
            f"declares {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}",
        )
    try:
        return predictor.prepare(data)
    except DataError as exc:
        # The message names "image bytes (N bytes)"; the caller names the file instead.
        reason = str(exc).split(": ", 1)[-1]
        raise ImageRefused(415, "not_an_image", reason) from None
