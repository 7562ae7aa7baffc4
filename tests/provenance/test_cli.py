"""`realfake provenance FILE...`: evidence lines, JSON, the combined verdict, bad paths."""

from __future__ import annotations

import json

import pytest
from provenance_files import A1111, DST, exif, jpeg, png, sign_jpeg

from realfake.cli import main

CAPTURE = f"{DST}digitalCapture"


def test_prints_each_files_evidence_lines(tmp_path, capsys):
    (tmp_path / "sd.png").write_bytes(png({"parameters": A1111}))
    (tmp_path / "plain.jpg").write_bytes(jpeg())
    assert main(["provenance", str(tmp_path / "sd.png"), str(tmp_path / "plain.jpg")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path / 'sd.png'} (png)"
    assert out[1].startswith("  [png-text] text chunk 'parameters' holds Stable Diffusion")
    assert out[2] == f"{tmp_path / 'plain.jpg'} (jpeg)"
    assert out[3] == "  no provenance found; absence proves nothing (metadata is easily stripped)"


def test_json_and_the_combined_verdict(tmp_path, capsys):
    path = tmp_path / "firefly.jpg"
    path.write_bytes(jpeg(exif=exif(Software="Adobe Firefly")))
    assert main(["provenance", str(path), "--json", "--pixel", "real"]) == 0
    [document] = json.loads(capsys.readouterr().out)
    assert document["name"] == "firefly.jpg" and document["format"] == "jpeg"
    [finding] = document["findings"]
    assert (finding["source"], finding["field"], finding["value"]) == (
        "exif",
        "Software",
        "Adobe Firefly",
    )
    assert document["combined"]["verdict"] == "FAKE"
    assert document["combined"]["rule"] == "declared-generated"


def test_the_combined_verdict_in_text(tmp_path, capsys):
    path = tmp_path / "plain.png"
    path.write_bytes(png())
    assert main(["provenance", str(path), "--pixel", "UNSURE"]) == 0
    out = capsys.readouterr().out
    assert "  combined with pixels UNSURE: UNSURE (pixels)" in out


def test_a_missing_file_or_a_folder_is_one_sentence_and_exit_2(tmp_path, capsys):
    assert main(["provenance", str(tmp_path / "nope.png")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.png'}: no such file\n"
    assert main(["provenance", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path} is a folder; pass image files\n"


def test_trust_anchors_from_a_pem_file_and_a_file_that_is_not_one(tmp_path, pki, capsys):
    pytest.importorskip("c2pa", reason="c2pa-python is not installed (realfake[dev])")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(sign_jpeg(pki, [{"action": "c2pa.created", "digitalSourceType": CAPTURE}]))
    roots = tmp_path / "roots.pem"
    roots.write_text(pki.root_pem)
    assert main(["provenance", str(photo), "--trust-anchors", str(roots), "--json"]) == 0
    [document] = json.loads(capsys.readouterr().out)
    assert document["c2pa"]["signature"] == "trusted"
    roots.write_text("not a certificate")
    assert main(["provenance", str(photo), "--trust-anchors", str(roots)]) == 2
    assert "holds no PEM certificate" in capsys.readouterr().err
