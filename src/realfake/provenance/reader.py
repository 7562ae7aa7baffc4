"""``read_provenance``: every origin marker in a file's bytes, from its headers only.

Sources, in the order shown: C2PA Content Credentials (c2pa-python), XMP (IPTC digital source
type, CreatorTool), IPTC IIM, PNG text chunks (Stable Diffusion front ends), EXIF (Pillow).
No pixel is decoded and nothing goes over the network; a malformed marker becomes an
"unreadable" finding and never an exception, so one hostile marker cannot hide the others.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from realfake.errors import DataError
from realfake.provenance.containers import (
    MAX_TEXT_CHUNKS,
    MIME,
    XMP_KEY,
    iter_xmp_packets,
    png_markers,
    sniff,
)
from realfake.provenance.credentials import read_c2pa
from realfake.provenance.markers import (
    parameters_text_finding,
    png_text_finding,
    software_finding,
)
from realfake.provenance.record import VALUE_CHARS, C2paClaim, Finding, Provenance, Source, clip
from realfake.provenance.xmp import xmp_findings

MAX_FILE_BYTES = 512 << 20  # a C2PA check hashes the whole file, so the whole file is read
# Formats whose headers Pillow reads here; opening one parses its header, never its pixels.
PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "gif": "GIF", "avif": "AVIF"}

EXIF_IFD = 0x8769
SOFTWARE, MAKE, MODEL, DESCRIPTION, ARTIST = 0x0131, 0x010F, 0x0110, 0x010E, 0x013B
USER_COMMENT = 0x9286
# IPTC IIM datasets (record 2) read from a JPEG's Photoshop APP13 block.
IIM = {(2, 65): "OriginatingProgram", (2, 110): "Credit", (2, 80): "By-line"}
IIM_CAPTION = (2, 120)


def read_provenance(data: bytes, name: str = "", trust_anchors: str | None = None) -> Provenance:
    """What ``data`` (a whole image file) says about its origin, marker by marker.

    ``trust_anchors``: PEM root certificates that a C2PA signer must chain to for its claim to
    count as "trusted"; without them a verifying signature is "intact", its signer unverified.
    """
    fmt = sniff(data)
    findings: list[Finding] = []
    c2pa_findings, claim, notes = _guarded_c2pa(data, fmt, trust_anchors)
    if fmt == "png":
        findings += _guard("png-text", "chunks", lambda: _png(data))
    elif fmt in PILLOW_FORMATS:
        findings += _guard("exif", "image header", lambda: _pillow(data, PILLOW_FORMATS[fmt]))
    if not any(f.source == "xmp" for f in findings) and fmt != "png":
        # No container parser found XMP (HEIC, an unknown format, a header Pillow refused):
        # XMP is plain XML wherever it is stored, so look for the packet itself.
        for packet in iter_xmp_packets(data):
            findings += _guard("xmp", "packet", lambda p=packet: xmp_findings(p))
    order = {"xmp": 0, "iptc": 1, "png-text": 2, "exif": 3}
    findings.sort(key=lambda f: order.get(f.source, 0))
    return Provenance(name, fmt, tuple(c2pa_findings + findings), claim, tuple(notes))


def read_file(path: str | Path, trust_anchors: str | None = None) -> Provenance:
    """``read_provenance`` of a file on disk, with one-sentence errors for a bad path."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; pass image files")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(
                f"{path} is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for a "
                "provenance check"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc})") from None
    return read_provenance(data, path.name, trust_anchors)


def _guard(source: Source, field: str, read: Callable[[], list[Finding]]) -> list[Finding]:
    """``read()``, or one "unreadable" finding when the marker makes the parser fail."""
    try:
        return read()
    except Exception as exc:  # a hostile file may break any parser: it must not hide the rest
        why = clip(f"{type(exc).__name__}: {exc}", 200)
        return [Finding(source, field, "", f"{field} unreadable ({why})", "unreadable")]


def _guarded_c2pa(
    data: bytes, fmt: str | None, trust_anchors: str | None
) -> tuple[list[Finding], C2paClaim | None, list[str]]:
    try:
        return read_c2pa(data, MIME.get(fmt or ""), trust_anchors)
    except Exception as exc:  # c2pa-python wraps a native library: any failure is the file's
        why = clip(f"{type(exc).__name__}: {exc}", 200)
        found = Finding("c2pa", "manifest store", "", f"C2PA unreadable ({why})", "unreadable")
        return [found], None, []


def _png(data: bytes) -> list[Finding]:
    markers = png_markers(data)
    found: list[Finding] = []
    for text in markers.texts:
        if text.text is None:
            line = f"text chunk {text.key!r} ({text.chunk}) unreadable: {text.problem}"
            found.append(Finding("png-text", text.key, "", line, "unreadable"))
        elif text.key == XMP_KEY:
            found += _guard("xmp", "packet", lambda t=text.text: xmp_findings(t.encode()))
        else:
            found.append(png_text_finding(text.key, text.text))
    if markers.skipped_texts:
        line = (
            f"{markers.skipped_texts} more text chunks not read (the limit is "
            f"{MAX_TEXT_CHUNKS} a file)"
        )
        found.append(Finding("png-text", "chunks", "", line, "unreadable"))
    if markers.problem:
        found.append(Finding("png-text", "chunks", "", f"PNG {markers.problem}", "unreadable"))
    if markers.exif is not None:
        found += _guard("exif", "eXIf", lambda: _exif_findings(_load_exif(markers.exif), True))
    return found


def _load_exif(raw: bytes) -> Any:
    from PIL import Image

    exif = Image.Exif()
    exif.load(raw)
    return exif


def _pillow(data: bytes, fmt: str) -> list[Finding]:
    from PIL import Image, IptcImagePlugin

    found: list[Finding] = []
    with Image.open(io.BytesIO(data), formats=[fmt]) as image:  # header only: no pixels
        xmp = image.info.get("xmp")
        if xmp:
            raw = xmp if isinstance(xmp, bytes) else str(xmp).encode()
            found += _guard("xmp", "packet", lambda: xmp_findings(raw))
        found += _guard("iptc", "IIM", lambda: _iim_findings(IptcImagePlugin.getiptcinfo(image)))
        present = bool(image.info.get("exif"))
        found += _guard("exif", "EXIF", lambda: _exif_findings(image.getexif(), present))
    return found


def _text(value: Any) -> str:
    """An EXIF/IIM value as text: bytes decoded, NULs dropped, lists joined."""
    if isinstance(value, (list, tuple)):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        # Pillow decodes EXIF ASCII as Latin-1; tools write UTF-8 there ("DALL·E").
        with contextlib.suppress(UnicodeError):
            value = value.encode("latin-1").decode("utf-8")
    return str(value).replace("\x00", "").strip()


def _user_comment(value: Any) -> str:
    """EXIF UserComment: an 8-byte character-code prefix, then the text (EXIF 2.32, 4.6.5)."""
    if not isinstance(value, bytes):
        return _text(value)
    code, body = value[:8], value[8:]
    if code.startswith(b"UNICODE"):
        # The byte order is the TIFF file's, which this field does not carry: a zero high byte
        # in the first character tells big-endian (what AUTOMATIC1111 writes) from little.
        order = "utf-16-be" if body[:1] == b"\x00" else "utf-16-le"
        return body.decode(order, "replace").replace("\x00", "").strip()
    return _text(body if code.rstrip(b"\x00") in (b"ASCII", b"") else value)


def _exif_findings(exif: Any, present: bool) -> list[Finding]:
    """Findings of an EXIF block; ``present``: the file holds one (so no tag means broken)."""
    if present and not len(exif) and not exif.get_ifd(EXIF_IFD):
        line = "EXIF block present but no tag in it could be read (corrupt or truncated)"
        return [Finding("exif", "EXIF", "", line, "unreadable")]
    found: list[Finding] = []
    software = _text(exif.get(SOFTWARE, ""))
    if software:
        found.append(software_finding("exif", "Software", software))
    camera = " ".join(_text(exif.get(tag, "")) for tag in (MAKE, MODEL)).strip()
    if camera:
        line = (
            f"camera Make/Model {camera!r}: unsigned, and any tool can write it, so it is not "
            "evidence of a real photo"
        )
        found.append(Finding("exif", "Make/Model", clip(camera, VALUE_CHARS), line))
    texts = [("ImageDescription", _text(exif.get(DESCRIPTION, "")))]
    texts.append(("Artist", _text(exif.get(ARTIST, ""))))
    texts.append(("UserComment", _user_comment(exif.get_ifd(EXIF_IFD).get(USER_COMMENT, b""))))
    for field, value in texts:
        if value:
            params = parameters_text_finding("exif", field, value)
            line = f"{field}: {clip(value, 80)!r}"
            found.append(params or Finding("exif", field, clip(value, VALUE_CHARS), line))
    return found


def _iim_findings(iptc: dict[tuple[int, int], Any] | None) -> list[Finding]:
    found: list[Finding] = []
    for key, field in IIM.items():
        value = _text(iptc.get(key, "")) if iptc else ""
        if not value:
            continue
        if field == "OriginatingProgram":
            found.append(software_finding("iptc", field, value))
        else:
            found.append(Finding("iptc", field, clip(value, VALUE_CHARS), f"{field}: {value!r}"))
    caption = _text(iptc.get(IIM_CAPTION, "")) if iptc else ""
    if caption:
        line = f"Caption-Abstract: {clip(caption, 80)!r}"
        params = parameters_text_finding("iptc", "Caption-Abstract", caption)
        found.append(
            params or Finding("iptc", "Caption-Abstract", clip(caption, VALUE_CHARS), line)
        )
    return found
