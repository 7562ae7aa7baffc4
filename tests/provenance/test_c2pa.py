"""C2PA Content Credentials signed here with a throw-away PKI: valid, trusted, tampered, remote.

Signing uses c2pa-python's Builder with an ES256 leaf under a self-signed root made by the
``pki`` fixture; nothing is fetched (no timestamp authority, no trust list, no OCSP).
"""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest
from provenance_files import DST, jpeg, make_pki, sign_jpeg

from realfake.provenance import combine, read_provenance

pytest.importorskip("c2pa", reason="c2pa-python is not installed (realfake[dev])")

CREATED_AI = [{"action": "c2pa.created", "digitalSourceType": f"{DST}trainedAlgorithmicMedia"}]
CREATED_CAPTURE = [{"action": "c2pa.created", "digitalSourceType": f"{DST}digitalCapture"}]
EDITED_WITH_AI = {
    "action": "c2pa.edited",
    "digitalSourceType": f"{DST}compositeWithTrainedAlgorithmicMedia",
}


def test_a_signed_ai_claim_decides_fake_whatever_the_pixels_say(pki):
    found = read_provenance(sign_jpeg(pki, CREATED_AI), "generated.jpg")
    claim = found.c2pa
    assert claim is not None and claim.signature == "intact"
    assert (claim.signer, claim.issuer) == ("realfake test signer", "realfake tests")
    assert claim.generator == "realfake-test-generator 1.0"
    assert claim.failures == ("signingCredential.untrusted",)
    head, action = found.findings[:2]
    assert "signer not verified against a trust list" in head.line
    assert (action.kind, action.signature) == ("generated", "intact")
    assert action.value == f"{DST}trainedAlgorithmicMedia"
    for pixel in ("FAKE", "REAL", "UNSURE"):
        combined = combine(pixel, found)
        assert (combined.verdict, combined.rule) == ("FAKE", "signed-generated")
    reason = combine("REAL", found).reasons[0]
    assert "realfake test signer" in reason and "realfake-test-generator 1.0" in reason


def test_a_signed_capture_then_ai_edit_is_fake(pki):
    found = read_provenance(sign_jpeg(pki, [*CREATED_CAPTURE, EDITED_WITH_AI]))
    assert [(f.field, f.kind) for f in found.findings[1:]] == [
        ("c2pa.created digitalSourceType", "capture"),
        ("c2pa.edited digitalSourceType", "generated"),
    ]
    assert combine("REAL", found).verdict == "FAKE"


def test_a_signed_capture_claim_supports_real_but_does_not_override_fake_pixels(pki):
    found = read_provenance(sign_jpeg(pki, CREATED_CAPTURE), "photo.jpg")
    assert [(f.kind, f.signature) for f in found.findings] == [
        ("info", "intact"),
        ("capture", "intact"),
    ]
    against = combine("FAKE", found)
    assert (against.verdict, against.rule) == ("UNSURE", "signed-capture")
    assert "supports REAL" in against.reasons[0] and "digitalCapture" in against.reasons[0]
    assert against.reasons[1] == "pixels: FAKE, overridden to UNSURE by this rule"
    assert combine("REAL", found).verdict == "REAL"
    # Anyone can sign a capture claim with a certificate of their own: unsure stays unsure.
    assert combine("UNSURE", found).verdict == "UNSURE"


def test_trust_anchors_make_a_signer_trusted_and_only_then_settle_unsure(pki):
    data = sign_jpeg(pki, CREATED_CAPTURE)
    trusted = read_provenance(data, trust_anchors=pki.root_pem)
    assert trusted.c2pa.signature == "trusted" and trusted.c2pa.failures == ()
    assert "signer on the given trust list" in trusted.findings[0].line
    assert combine("UNSURE", trusted).verdict == "REAL"
    assert combine("FAKE", trusted).verdict == "UNSURE"
    stranger = read_provenance(data, trust_anchors=make_pki().root_pem)
    assert stranger.c2pa.signature == "intact"
    assert "signer NOT on the given trust list" in stranger.findings[0].line


def test_bytes_changed_after_signing_are_reported_as_tampered_and_ignored(pki):
    signed = sign_jpeg(pki, CREATED_AI)
    tampered = bytearray(signed)
    tampered[-20] ^= 0xFF  # inside the entropy-coded image data, which the claim hashes
    found = read_provenance(bytes(tampered), "tampered.jpg")
    assert found.c2pa.signature == "invalid"
    assert "assertion.dataHash.mismatch" in found.c2pa.failures
    head = found.findings[0]
    assert "INVALID" in head.line and "assertion.dataHash.mismatch" in head.line
    assert all(f.signature == "invalid" for f in found.findings if f.source == "c2pa")
    assert not [f for f in found.findings if f.kind == "generated"]
    for pixel in ("FAKE", "REAL", "UNSURE"):
        combined = combine(pixel, found)
        assert (combined.verdict, combined.rule) == (pixel, "pixels")
        assert any("INVALID" in reason for reason in combined.reasons)


def test_a_remote_manifest_is_reported_and_never_fetched(pki):
    c2pa = pytest.importorskip("c2pa")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/manifest.c2pa"
    requests: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(1)
                requests.append(connection.recv(256))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        definition = {
            "claim_generator_info": [{"name": "realfake-test-generator"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": CREATED_AI}}],
        }
        info = c2pa.C2paSignerInfo(
            alg=b"es256", sign_cert=pki.chain_pem, private_key=pki.key_pem, ta_url=None
        )
        out = io.BytesIO()
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(definition) as builder:
            builder.set_no_embed()
            builder.set_remote_url(url)
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg()), out)
        found = read_provenance(out.getvalue(), "remote.jpg")
        time.sleep(0.3)  # a fetch, had one started, would have connected by now
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert requests == []
    remote = [f for f in found.findings if f.source == "c2pa"]
    assert [f.field for f in remote] == ["remote manifest"]
    assert url in remote[0].line and "not fetched" in remote[0].line
    assert combine("REAL", found).verdict == "REAL"
