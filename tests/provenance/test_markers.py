"""Files made with each unsigned marker: what read_provenance finds and what combine decides."""

from __future__ import annotations

import io
import json
import sys
import zlib

import pytest
from PIL import Image
from provenance_files import A1111, COMFY_PROMPT, DST, exif, jpeg, png, xmp_packet

from realfake.provenance import combine, read_provenance


def generated(found) -> list:
    return [f for f in found.findings if f.kind == "generated"]


def test_a1111_parameters_in_png_text_are_a_declaration():
    found = read_provenance(png({"parameters": A1111}), "cat.png")
    [finding] = generated(found)
    assert (finding.source, finding.field, finding.signature) == ("png-text", "parameters", "none")
    assert finding.value == A1111
    assert "Stable Diffusion generation data" in finding.line
    assert "unsigned" in finding.line and "forged or stripped" in finding.line
    combined = combine("REAL", found)
    assert (combined.verdict, combined.rule) == ("FAKE", "declared-generated")
    assert combined.reasons[0].startswith("FAKE by declaration")


def test_comfyui_prompt_and_workflow_json_in_png_text():
    workflow = json.dumps({"nodes": [{"id": 3, "type": "KSampler"}], "links": []})
    found = read_provenance(png({"prompt": COMFY_PROMPT, "workflow": workflow}))
    fields = {f.field: f for f in generated(found)}
    assert set(fields) == {"prompt", "workflow"}
    assert "ComfyUI prompt" in fields["prompt"].line
    assert combine("UNSURE", found).verdict == "FAKE"


def test_a_prompt_chunk_that_is_not_comfyui_json_decides_nothing():
    # "prompt" is a common word: without ComfyUI's node graph the chunk is only shown.
    found = read_provenance(png({"prompt": "remember to buy milk"}))
    assert [f.kind for f in found.findings] == ["info"]
    assert combine("REAL", found).verdict == "REAL"


def test_novelai_software_and_comment():
    comment = json.dumps({"prompt": "a cat", "steps": 28, "sampler": "k_euler", "seed": 7})
    found = read_provenance(png({"Software": "NovelAI", "Comment": comment}))
    assert {f.field for f in generated(found)} == {"Software", "Comment"}


@pytest.mark.parametrize(
    ("software", "name"),
    [("DALL·E 3", "DALL·E"), ("Adobe Firefly", "Adobe Firefly"), ("Midjourney v6", "Midjourney")],
)
def test_jpeg_exif_software_naming_a_generator(software, name):
    found = read_provenance(jpeg(exif=exif(Software=software)), "gen.jpg")
    [finding] = generated(found)
    assert (finding.source, finding.field, finding.value) == ("exif", "Software", software)
    assert f"names the generator {name}" in finding.line
    assert combine("REAL", found).verdict == "FAKE"


def test_exif_of_an_editor_and_a_camera_decides_nothing():
    block = exif(Software="Adobe Photoshop 25.0 (Windows)", Make="Canon", Model="EOS R5")
    found = read_provenance(jpeg(exif=block))
    assert {f.field: f.kind for f in found.findings} == {"Software": "info", "Make/Model": "info"}
    camera = next(f for f in found.findings if f.field == "Make/Model")
    assert camera.value == "Canon EOS R5"
    assert "not evidence of a real photo" in camera.line
    # A camera name is trivial to write: FAKE pixels stay FAKE.
    assert combine("FAKE", found).verdict == "FAKE"


def test_a1111_parameters_in_jpeg_exif_user_comment():
    # AUTOMATIC1111 saves JPEG/WebP parameters as a UNICODE (UTF-16 big-endian) UserComment.
    block = Image.Exif()
    block.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111.encode("utf-16-be")
    found = read_provenance(jpeg(exif=block))
    [finding] = generated(found)
    assert (finding.source, finding.field, finding.value) == ("exif", "UserComment", A1111)


AI_SOURCE = f"{DST}trainedAlgorithmicMedia"
AI_ATTRIBUTE = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{AI_SOURCE}"')
AI_ELEMENT = xmp_packet(
    elements=f"<Iptc4xmpExt:DigitalSourceType>{AI_SOURCE}</Iptc4xmpExt:DigitalSourceType>"
)
AI_RESOURCE = xmp_packet(elements=f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{AI_SOURCE}"/>')


@pytest.mark.parametrize(
    "packet", [AI_ATTRIBUTE, AI_ELEMENT, AI_RESOURCE], ids=["attribute", "element", "resource"]
)
@pytest.mark.parametrize("container", ["jpeg", "png"])
def test_xmp_digital_source_type_trained_algorithmic_media(container, packet):
    data = jpeg(xmp=packet.encode()) if container == "jpeg" else png(xmp=packet)
    found = read_provenance(data)
    [finding] = generated(found)
    assert (finding.source, finding.field) == ("xmp", "Iptc4xmpExt:DigitalSourceType")
    assert finding.value == AI_SOURCE
    assert "generative AI" in finding.line and "unsigned" in finding.line
    combined = combine("REAL", found)
    assert (combined.verdict, combined.rule) == ("FAKE", "declared-generated")


def test_xmp_composite_with_ai_and_creator_tool():
    packet = xmp_packet(
        f'Iptc4xmpExt:DigitalSourceType="{DST}compositeWithTrainedAlgorithmicMedia" '
        'xmp:CreatorTool="Adobe Photoshop 25.0"'
    )
    found = read_provenance(jpeg(xmp=packet.encode()))
    kinds = {f.field: f.kind for f in found.findings}
    assert kinds == {"Iptc4xmpExt:DigitalSourceType": "generated", "xmp:CreatorTool": "info"}


def test_an_unsigned_capture_declaration_does_not_make_fake_pixels_real():
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}digitalCapture"')
    found = read_provenance(jpeg(xmp=packet.encode()))
    assert [f.kind for f in found.findings] == ["capture"]
    combined = combine("FAKE", found)
    assert (combined.verdict, combined.rule) == ("FAKE", "pixels")


def test_webp_with_xmp_is_read_too():
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, "WEBP", xmp=AI_ATTRIBUTE.encode())
    found = read_provenance(out.getvalue())
    assert found.format == "webp"
    assert [f.kind for f in found.findings] == ["generated"]


@pytest.mark.parametrize("maker", [lambda: png(), lambda: jpeg()], ids=["png", "jpeg"])
def test_a_stripped_file_has_no_provenance_and_keeps_the_pixel_verdict(maker):
    found = read_provenance(maker())
    assert found.findings == () and not found.found
    assert found.lines() == [
        "no provenance found; absence proves nothing (metadata is easily stripped)"
    ]
    for pixel in ("FAKE", "REAL", "UNSURE"):
        combined = combine(pixel, found)
        assert (combined.verdict, combined.rule) == (pixel, "pixels")
        assert "absence proves nothing" in combined.reasons[0]


def test_reading_metadata_decodes_no_pixels():
    # The image data is garbage after the header: decoding it would fail; reading markers not.
    data = png({"parameters": A1111})
    idat = data.index(b"IDAT")
    broken = data[: idat + 4] + bytes(len(data) - idat - 4 - 12) + data[-12:]
    with pytest.raises(OSError):
        Image.open(io.BytesIO(broken)).load()
    assert [f.field for f in generated(read_provenance(broken))] == ["parameters"]


def test_text_chunks_after_the_image_data_are_read():
    data = png()
    chunk = b"parameters\x00" + A1111.encode("latin-1")
    crc = zlib.crc32(b"tEXt" + chunk).to_bytes(4, "big")
    late = len(chunk).to_bytes(4, "big") + b"tEXt" + chunk + crc
    with_late = data[:-12] + late + data[-12:]  # just before IEND
    assert [f.field for f in generated(read_provenance(with_late))] == ["parameters"]


def iim_segment(records: dict[int, str]) -> bytes:
    """A JPEG APP13 segment: Photoshop's 8BIM resource 0x0404 holding IPTC IIM record 2."""
    iim = b"".join(
        b"\x1c\x02" + bytes([dataset]) + len(v.encode()).to_bytes(2, "big") + v.encode()
        for dataset, v in records.items()
    )
    if len(iim) % 2:
        iim += b"\x00"
    resource = b"8BIM\x04\x04\x00\x00" + len(iim).to_bytes(4, "big") + iim
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload


def test_iptc_iim_originating_program_naming_a_generator():
    data = jpeg()
    found = read_provenance(data[:2] + iim_segment({65: "Midjourney", 110: "Jane Doe"}) + data[2:])
    assert [(f.source, f.field, f.kind) for f in found.findings] == [
        ("iptc", "OriginatingProgram", "generated"),
        ("iptc", "Credit", "info"),
    ]
    assert combine("REAL", found).verdict == "FAKE"


def test_without_c2pa_python_the_other_markers_are_read_and_the_gap_is_said(monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa now raises ImportError
    found = read_provenance(png({"parameters": A1111}))
    assert [f.field for f in generated(found)] == ["parameters"]
    assert found.lines()[-1] == (
        "C2PA not checked: c2pa-python is not installed (pip install 'realfake[provenance]')"
    )
