"""Hostile and broken files: an "unreadable marker" line, never an exception, in bounded time."""

from __future__ import annotations

import struct
import time
import zlib
from itertools import pairwise

import pytest
from provenance_files import A1111, DST, exif, jpeg, png, xmp_packet

from realfake.provenance import combine, read_provenance

AI_PACKET = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"')


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload).to_bytes(4, "big")
    return struct.pack(">I", len(payload)) + ctype + payload + crc


def before_iend(data: bytes, *chunks: bytes) -> bytes:
    return data[:-12] + b"".join(chunks) + data[-12:]


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def unreadable(found, source: str) -> list[str]:
    return [f.line for f in found.findings if f.kind == "unreadable" and f.source == source]


def timed_read(data: bytes):
    start = time.perf_counter()
    found = read_provenance(data, "hostile")
    assert time.perf_counter() - start < 2.0
    return found


@pytest.mark.parametrize("container", ["jpeg", "png"])
def test_a_truncated_xmp_packet_is_an_unreadable_line(container):
    cut = AI_PACKET[: len(AI_PACKET) // 2]
    data = jpeg(xmp=cut.encode()) if container == "jpeg" else png(xmp=cut)
    found = timed_read(data)
    [line] = unreadable(found, "xmp")
    assert line.startswith("XMP packet unreadable: truncated or malformed XML")
    assert not found.found
    assert combine("REAL", found).verdict == "REAL"


def test_an_xmp_packet_with_entities_is_refused_not_expanded():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in pairwise("abcdefgh"))
        + ']><x:xmpmeta xmlns:x="adobe:ns:meta/">&h;</x:xmpmeta>'
    )
    found = timed_read(jpeg(xmp=bomb.encode()))
    [line] = unreadable(found, "xmp")
    assert "declares a DTD or entities" in line


def test_a_10_mb_text_chunk_is_not_read_and_does_not_hide_the_next_one():
    huge = png_chunk(b"tEXt", b"Comment\x00" + b"x" * (10 << 20))
    params = png_chunk(b"tEXt", b"parameters\x00" + A1111.encode())
    found = timed_read(before_iend(png(), huge, params))
    [line] = unreadable(found, "png-text")
    assert "'Comment'" in line and "10,485,768 bytes" in line and "read limit" in line
    assert [f.field for f in found.findings if f.kind == "generated"] == ["parameters"]


def test_a_compressed_text_chunk_that_inflates_without_bound_is_not_inflated():
    bomb = zlib.compress(b"\x00" * (64 << 20), 9)  # 64 MiB of zeros in about 64 kB
    found = timed_read(before_iend(png(), png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)))
    [line] = unreadable(found, "png-text")
    assert "inflates to over 1,048,576 bytes" in line


def test_a_json_chunk_nested_deep_enough_to_overflow_the_parser_is_only_shown():
    deep = "[" * 100_000 + "]" * 100_000
    found = timed_read(png({"prompt": deep, "workflow": deep}))
    assert [f.kind for f in found.findings] == ["info", "info"]


def test_text_chunks_past_the_limit_are_counted_not_read():
    chunks = [png_chunk(b"tEXt", f"k{i}\x00v".encode()) for i in range(100)]
    found = timed_read(before_iend(png(), *chunks))
    assert len([f for f in found.findings if f.kind == "info"]) == 64
    assert unreadable(found, "png-text") == [
        "36 more text chunks not read (the limit is 64 a file)"
    ]


def test_a_png_cut_short_keeps_what_was_read_before_the_cut():
    data = png({"parameters": A1111})
    found = timed_read(data[: data.index(b"IDAT") + 20])
    assert [f.field for f in found.findings if f.kind == "generated"] == ["parameters"]
    [line] = unreadable(found, "png-text")
    assert "runs past the end of the file (truncated)" in line


def test_a_garbage_c2pa_box_in_a_jpeg_is_unreadable_and_the_rest_is_read():
    # APP11 holds C2PA's JUMBF: "JP", instance, sequence, a superbox labelled c2pa, then noise.
    boxes = struct.pack(">I", 48) + b"jumb" + struct.pack(">I", 40) + b"jumdc2pa"
    jumbf = b"JP\x00\x01\x00\x00\x00\x01" + boxes + b"\xa5" * 60
    data = jpeg(exif=exif(Software="Midjourney"))
    hostile = data[:2] + jpeg_segment(0xFFEB, jumbf) + data[2:]
    found = timed_read(hostile)
    [line] = unreadable(found, "c2pa")
    assert line.startswith("C2PA data unreadable") and "not used as evidence" in line
    assert [f.field for f in found.findings if f.kind == "generated"] == ["Software"]
    assert combine("REAL", found).verdict == "FAKE"


def test_a_garbage_c2pa_chunk_in_a_png_is_unreadable():
    found = timed_read(
        before_iend(png(), png_chunk(b"caBX", b"\x00\x00\x00\x30jumb" + b"\xff" * 44))
    )
    assert unreadable(found, "c2pa")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_garbage_exif_is_an_unreadable_line():
    garbage = png_chunk(b"eXIf", b"MM\x00*\xff\xff\xff\xff" + b"\x01" * 9)
    found = timed_read(before_iend(png(), garbage))
    assert [f.line for f in found.findings] == [
        "EXIF block present but no tag in it could be read (corrupt or truncated)"
    ]
    assert combine("UNSURE", found).verdict == "UNSURE"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\x00\x00\x00\x00WEBP",
    ],
    ids=["empty", "text", "jpeg-magic-only", "png-signature-only", "webp-header-only"],
)
def test_files_that_are_barely_anything_give_no_provenance(data):
    found = timed_read(data)
    assert not found.found
    assert found.lines()[-1].startswith("no provenance found")


def test_a_jpeg_cut_inside_its_exif_is_an_unreadable_header_not_a_c2pa_error():
    data = jpeg(exif=exif(Software="DALL·E 3", ImageDescription="x" * 4000))
    for cut in (30, 200, 2000):
        found = timed_read(data[:cut])
        assert [(f.source, f.kind) for f in found.findings] == [("exif", "unreadable")]
        assert found.findings[0].line.startswith("image header unreadable")
