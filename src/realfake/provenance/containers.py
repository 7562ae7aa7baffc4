"""Where the markers sit in a file: the format from its magic bytes, PNG chunks, XMP packets.

Nothing here decodes pixels, and every read is bounded: a hostile file costs at most one pass
over its bytes and MAX_TEXT_BYTES of decompression per text chunk.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

MAX_TEXT_BYTES = 1 << 20  # of one PNG text chunk, compressed or not: prompts are < 100 kB
MAX_XMP_BYTES = 4 << 20  # of one XMP packet: JPEG caps one at 64 kB, PNG/TIFF do not
MAX_TEXT_CHUNKS = 64  # text chunks read from one PNG; the rest are counted, not read
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEY = "XML:com.adobe.xmp"  # the iTXt keyword of an XMP packet in PNG

MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "avif": "image/avif",
}


def sniff(data: bytes) -> str | None:
    """The image format named by the file's first bytes, or None."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return "heic"
    return None


@dataclass(frozen=True)
class PngText:
    """One PNG text chunk: its keyword and text, or why it could not be read."""

    chunk: str  # tEXt, zTXt or iTXt
    key: str
    text: str | None
    problem: str | None = None


@dataclass(frozen=True)
class PngMarkers:
    """The metadata chunks of a PNG, wherever they sit (before or after the image data)."""

    texts: tuple[PngText, ...]
    exif: bytes | None  # the eXIf chunk's TIFF bytes
    skipped_texts: int  # text chunks past MAX_TEXT_CHUNKS
    problem: str | None  # a truncated chunk list, or a bad signature


def _inflate(payload: bytes) -> bytes:
    """zlib-decompress at most MAX_TEXT_BYTES, raising ValueError past that (zip bombs)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(payload, MAX_TEXT_BYTES + 1)
    if len(out) > MAX_TEXT_BYTES or inflater.unconsumed_tail:
        raise ValueError(f"it inflates to over {MAX_TEXT_BYTES:,} bytes, the read limit")
    return out


def _text_chunk(ctype: str, payload: bytes) -> PngText:
    """Decode a tEXt/zTXt/iTXt payload; a malformed one comes back with its problem."""
    key_raw, sep, rest = payload.partition(b"\x00")
    key = key_raw[:79].decode("latin-1", "replace")
    if not sep or not key:
        return PngText(ctype, key or "?", None, "no keyword terminator")
    try:
        if ctype == "tEXt":
            return PngText(ctype, key, rest.decode("latin-1"))
        if ctype == "zTXt":
            return PngText(ctype, key, _inflate(rest[1:]).decode("latin-1"))
        if len(rest) < 2:
            raise ValueError("its header is cut short")
        compressed, rest = rest[0], rest[2:]
        _language, _, rest = rest.partition(b"\x00")
        _translated, _, body = rest.partition(b"\x00")
        raw = _inflate(body) if compressed else body
        return PngText(ctype, key, raw.decode("utf-8", "replace"))
    except (ValueError, zlib.error) as exc:
        return PngText(ctype, key, None, str(exc))


def png_markers(data: bytes) -> PngMarkers:
    """Walk a PNG's chunk list and collect its text chunks and eXIf, reading no image data."""
    texts: list[PngText] = []
    exif = None
    skipped = 0
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, raw_type = struct.unpack(">I4s", data[pos : pos + 8])
        ctype = raw_type.decode("latin-1")
        start, end = pos + 8, pos + 8 + length
        if end + 4 > len(data):
            problem = f"chunk {ctype!r} at byte {pos} runs past the end of the file (truncated)"
            return PngMarkers(tuple(texts), exif, skipped, problem)
        if ctype in ("tEXt", "zTXt", "iTXt"):
            if len(texts) >= MAX_TEXT_CHUNKS:
                skipped += 1
            elif length > MAX_TEXT_BYTES:
                key = data[start : start + 80].partition(b"\x00")[0].decode("latin-1", "replace")
                problem = f"it is {length:,} bytes, over the {MAX_TEXT_BYTES:,}-byte read limit"
                texts.append(PngText(ctype, key, None, problem))
            else:
                texts.append(_text_chunk(ctype, data[start:end]))
        elif ctype == "eXIf" and exif is None:
            exif = data[start:end]
        elif ctype == "IEND":
            break
        pos = end + 4  # the CRC
    return PngMarkers(tuple(texts), exif, skipped, None)


def iter_xmp_packets(data: bytes, limit: int = 4) -> Iterator[bytes]:
    """Raw ``<x:xmpmeta ...</x:xmpmeta>`` packets found in any file's bytes (at most ``limit``).

    For formats read by no container parser here (HEIC, AVIF without a plugin, a broken
    header): XMP is plain XML wherever it is stored. A packet whose end is missing within
    MAX_XMP_BYTES is yielded cut there, for the XML parser to call it truncated.
    """
    pos = 0
    for _ in range(limit):
        start = data.find(b"<x:xmpmeta", pos)
        if start < 0:
            return
        end = data.find(b"</x:xmpmeta>", start, start + MAX_XMP_BYTES)
        stop = start + MAX_XMP_BYTES if end < 0 else end + len(b"</x:xmpmeta>")
        yield data[start:stop]
        pos = stop
