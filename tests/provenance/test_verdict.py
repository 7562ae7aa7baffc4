"""The combined-verdict rule: its order, its asymmetries, and the table the docs show."""

from __future__ import annotations

from pathlib import Path

import pytest

from realfake.provenance import Finding, Provenance, combine
from realfake.provenance.verdict import RULES, rules_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "provenance.md"


def provenance(*findings: Finding) -> Provenance:
    return Provenance("made.jpg", "jpeg", findings)


AI_XMP = Finding(
    "xmp", "Iptc4xmpExt:DigitalSourceType", "trainedAlgorithmicMedia", "AI", "generated"
)
SIGNED_CAPTURE = Finding(
    "c2pa", "c2pa.created digitalSourceType", "digitalCapture", "camera", "capture", "intact"
)
TAMPERED = Finding("c2pa", "signature", "", "C2PA Content Credentials INVALID", signature="invalid")
TAMPERED_AI = Finding("c2pa", "c2pa.created", "", "from an INVALID manifest", signature="invalid")


def test_an_ai_declaration_wins_over_a_signed_capture_claim():
    # A forger gains by adding a capture claim, hardly by declaring AI: the declaration wins.
    combined = combine("REAL", provenance(SIGNED_CAPTURE, AI_XMP))
    assert (combined.verdict, combined.rule) == ("FAKE", "declared-generated")


def test_an_invalid_claim_is_ignored_but_an_unsigned_declaration_still_counts():
    combined = combine("REAL", provenance(TAMPERED, TAMPERED_AI, AI_XMP))
    assert (combined.verdict, combined.rule) == ("FAKE", "declared-generated")
    assert combined.reasons[-1] == "C2PA Content Credentials INVALID"
    alone = combine("REAL", provenance(TAMPERED, TAMPERED_AI))
    assert (alone.verdict, alone.rule) == ("REAL", "pixels")


def test_info_only_provenance_lets_the_pixel_verdict_stand():
    camera = Finding("exif", "Make/Model", "Canon EOS R5", "camera")
    combined = combine("FAKE", provenance(camera))
    assert combined.verdict == "FAKE"
    assert combined.reasons[0] == "the pixel verdict stands: no provenance line decides"


def test_the_pixel_verdict_is_read_in_any_case_and_refused_when_unknown():
    assert combine(" unsure ", provenance()).verdict == "UNSURE"
    with pytest.raises(ValueError, match="pixel verdict 'maybe' is not one of FAKE, REAL, UNSURE"):
        combine("maybe", provenance())


def test_no_rule_turns_a_fake_pixel_verdict_real():
    assert all(rule.outcome["FAKE"] != "REAL" for rule in RULES)


def test_the_docs_show_the_rule_table_as_it_is_in_the_code():
    assert rules_markdown() in DOCS.read_text()
