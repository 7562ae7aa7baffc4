"""Image bytes -> RGB uint8 arrays (of one size, or native). Imports no torch: workers stay light.

Colour policy: every mode becomes RGB. Grayscale and palette images are expanded; CMYK goes
through Pillow's conversion; 16-bit images keep their top 8 bits; images with transparency
(RGBA, LA, palette with a transparent colour) are composited on white, the way viewers and
browsers show them, so hidden colour values under transparent pixels never reach the network.
EXIF orientation is applied, so phone photos are upright.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESAMPLE = Image.Resampling.BILINEAR  # Pillow widens the filter when shrinking: antialiased


def decode_image(data: bytes, size: int, resize: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image to a 3×size×size uint8 array; also return its original (width, height)."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    with Image.open(io.BytesIO(data)) as im:
        original = im.size
        if im.format == "JPEG" and min(original) > size:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers the target:
            # most of the work for large photos disappears (Pillow's draft mode).
            im.draft("RGB", (size, size))
        im.load()
        return prepare_image(im, size, resize), original


# Native-resolution decoding keeps every pixel: 64 megapixels (a 9248×6936 photo) is 192 MB of
# uint8, the most one image may take; larger ones are refused rather than resized.
MAX_NATIVE_PIXELS = 64_000_000


def decode_native(data: bytes) -> np.ndarray:
    """Decode one image at its own size (upright, RGB): 3×H×W uint8, never resized."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    with Image.open(io.BytesIO(data)) as im:
        return native_image(im)


def native_image(im: Image.Image) -> np.ndarray:
    """An opened image upright and RGB at its own size (3×H×W uint8)."""
    w, h = im.size
    if w * h > MAX_NATIVE_PIXELS:
        raise ValueError(
            f"{w}×{h} is {w * h / 1e6:.0f} megapixels, over the {MAX_NATIVE_PIXELS / 1e6:.0f} "
            "scored at native resolution"
        )
    im.load()
    if "exif" in im.info:
        im = ImageOps.exif_transpose(im)
    return np.asarray(_to_rgb(im)).transpose(2, 0, 1)


def to_tile_size(pixels: np.ndarray, size: int, resize: str) -> np.ndarray:
    """A native 3×H×W uint8 image brought to 3×size×size by ``resize`` (through Pillow).

    The one rule for images too small to tile: prediction applies it when it tiles an image
    (realfake.data.tiles) and native training when it caches one, so both see the same pixels.
    """
    picture = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
    return prepare_image(picture, size, resize)


def fit_native(
    pixels: np.ndarray, size: int, resize: str, max_side: int
) -> tuple[np.ndarray, bool]:
    """A native 3×H×W image as native training keeps it, and whether it was resized.

    An image smaller than ``size`` on a side is brought to size×size (``to_tile_size``, as
    prediction does); one larger than ``max_side`` on a side keeps its central region of at
    most max_side×max_side pixels, cropped, never resized; any other is kept whole.
    """
    h, w = pixels.shape[1:]
    if h < size or w < size:
        return to_tile_size(pixels, size, resize), True
    return np.ascontiguousarray(central_region(pixels, max_side)), False


def central_region(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """The central region of at most max_side×max_side pixels of a 3×H×W image (a view; the
    whole image when it fits, or when ``max_side`` is 0): the cap native training caches, and
    what prediction tiles for a model trained with it."""
    h, w = pixels.shape[1:]
    if max_side <= 0 or (h <= max_side and w <= max_side):
        return pixels
    top, left = (h - min(h, max_side)) // 2, (w - min(w, max_side)) // 2
    return pixels[:, top : top + min(h, max_side), left : left + min(w, max_side)]


def prepare_image(im: Image.Image, size: int, resize: str) -> np.ndarray:
    """An opened image as the network sees it: upright, RGB, size×size (3×size×size uint8)."""
    if "exif" in im.info:
        im = ImageOps.exif_transpose(im)
    im = _to_rgb(im)
    if im.size != (size, size):
        box = None
        if resize == "center_crop":
            w, h = im.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        im = im.resize((size, size), RESAMPLE, box=box)
    return np.asarray(im).transpose(2, 0, 1)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if im.mode != "F" and arr.max(initial=0) > 255:
            arr = arr / 257.0  # 16-bit range onto 8 bits
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def describe_failure(exc: BaseException) -> str:
    """A short, stable reason for a skipped file (no memory addresses)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image (corrupt or wrong extension)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "truncated" in text.lower():
        return f"truncated file ({text})"
    if isinstance(exc, ValueError) and text.startswith("empty file"):
        return text
    return f"cannot decode ({type(exc).__name__}: {text})"


@dataclass
class DecodedChunk:
    images: np.ndarray  # uint8 n×3×size×size (rows of failed images are zero)
    sizes: np.ndarray  # int32 n×2 original (width, height); 0 for failures
    md5: np.ndarray  # uint8 n×16 digest of the file bytes
    failures: list[tuple[int, str]]  # (row, reason)


@dataclass
class NativeChunk:
    """Images of one chunk at their own size, back to back (see realfake.data.ragged)."""

    pixels: np.ndarray  # uint8, image i at offsets[i] as 3×h×w (nothing for failures)
    offsets: np.ndarray  # int64 n
    shapes: np.ndarray  # int64 n×2 (h, w) as kept; 0 for failures
    sizes: np.ndarray  # int32 n×2 original (width, height); 0 for failures
    md5: np.ndarray  # uint8 n×16 digest of the file bytes
    resized: np.ndarray  # bool n: smaller than a tile, brought to size×size
    failures: list[tuple[int, str]]  # (row, reason)


def decode_native_chunk(
    blobs: list[bytes | str], size: int, resize: str, max_side: int
) -> NativeChunk:
    """Decode many images at their own size (``fit_native``); a str is a read error."""
    n = len(blobs)
    kept: list[np.ndarray] = []
    out = NativeChunk(
        pixels=np.zeros(0, np.uint8),
        offsets=np.zeros(n, np.int64),
        shapes=np.zeros((n, 2), np.int64),
        sizes=np.zeros((n, 2), np.int32),
        md5=np.zeros((n, 16), np.uint8),
        resized=np.zeros(n, bool),
        failures=[],
    )
    position = 0

    def keep(i: int, blob: bytes) -> None:
        nonlocal position
        if not blob:
            raise ValueError("empty file (0 bytes)")
        with Image.open(io.BytesIO(blob)) as im:
            original = im.size
            pixels, out.resized[i] = fit_native(native_image(im), size, resize, max_side)
        out.sizes[i] = original
        out.shapes[i] = pixels.shape[1:]
        out.offsets[i] = position
        position += pixels.size
        kept.append(pixels.reshape(-1))

    _decode_each(blobs, out.md5, out.failures, keep)
    if kept:
        out.pixels = np.concatenate(kept)
    return out


def decode_chunk(blobs: list[bytes | str], size: int, resize: str) -> DecodedChunk:
    """Decode many images; a str in ``blobs`` is a read error carried through as a failure."""
    n = len(blobs)
    out = DecodedChunk(
        images=np.zeros((n, 3, size, size), np.uint8),
        sizes=np.zeros((n, 2), np.int32),
        md5=np.zeros((n, 16), np.uint8),
        failures=[],
    )

    def keep(i: int, blob: bytes) -> None:
        out.images[i], out.sizes[i] = decode_image(blob, size, resize)

    _decode_each(blobs, out.md5, out.failures, keep)
    return out


def _decode_each(
    blobs: list[bytes | str],
    md5: np.ndarray,
    failures: list[tuple[int, str]],
    decode: Callable[[int, bytes], None],
) -> None:
    """``decode(i, blob)`` for each readable blob, its MD5 kept; a str (a read error) or any
    exception of the decoder is that file's failure with its reason, never the whole load's."""
    for i, blob in enumerate(blobs):
        if isinstance(blob, str):
            failures.append((i, blob))
            continue
        md5[i] = np.frombuffer(hashlib.md5(blob, usedforsecurity=False).digest(), np.uint8)
        try:
            decode(i, blob)
        # Decoders raise many types (OSError, SyntaxError, ValueError, struct.error, ...).
        except Exception as exc:
            failures.append((i, describe_failure(exc)))
