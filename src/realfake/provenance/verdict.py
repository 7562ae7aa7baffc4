"""The combined verdict: the pixel model's answer and the file's provenance, by one rule table.

The rows are tried in order and the first whose evidence the file holds decides; when none
does, the pixel verdict stands. Two asymmetries shape the table (docs/provenance.md explains
them): a declaration of AI generation is believed even unsigned, because honest generators
write it and a forger gains little by it, while a claim of camera capture is exactly what a
forger wants, so it never overrides FAKE pixels; and missing metadata is never evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from realfake.provenance.record import NO_PROVENANCE, Finding, Kind, Provenance, Signature

Verdict = Literal["FAKE", "REAL", "UNSURE"]
VERDICTS: tuple[Verdict, ...] = ("FAKE", "REAL", "UNSURE")


@dataclass(frozen=True)
class Rule:
    """One row: the evidence that fires it and the combined verdict for each pixel verdict."""

    name: str
    kind: Kind
    signatures: tuple[Signature, ...]
    outcome: dict[Verdict, Verdict]  # pixel verdict -> combined verdict
    why: str


RULES: tuple[Rule, ...] = (
    Rule(
        "signed-generated",
        "generated",
        ("trusted", "intact"),
        {"FAKE": "FAKE", "REAL": "FAKE", "UNSURE": "FAKE"},
        "FAKE (AI-generated): a C2PA claim whose signature verifies declares an AI source; "
        "it decides whatever the pixels say",
    ),
    Rule(
        "declared-generated",
        "generated",
        ("none",),
        {"FAKE": "FAKE", "REAL": "FAKE", "UNSURE": "FAKE"},
        "FAKE by declaration: the file declares AI generation; the declaration is unsigned, "
        "so it can be forged or stripped",
    ),
    Rule(
        "trusted-capture",
        "capture",
        ("trusted",),
        {"FAKE": "UNSURE", "REAL": "REAL", "UNSURE": "REAL"},
        "supports REAL: a C2PA camera-capture claim whose signer chains to the given trust "
        "list; it does not override FAKE pixels, because a signature proves who signed and "
        "that nothing changed since, not what was in front of the lens (a screen or a print "
        "of a generated image can be photographed)",
    ),
    Rule(
        "signed-capture",
        "capture",
        ("intact",),
        {"FAKE": "UNSURE", "REAL": "REAL", "UNSURE": "UNSURE"},
        "supports REAL, weakly: a C2PA camera-capture claim whose signature verifies, but "
        "whose signer is not verified against a trust list (anyone can sign such a claim "
        "with a certificate of their own); it neither settles UNSURE pixels nor overrides "
        "FAKE ones",
    ),
)
PIXELS_STAND = "the pixel verdict stands: no provenance line decides"


@dataclass(frozen=True)
class Combined:
    """The combined verdict, the rule that gave it, and every reason shown beside it."""

    verdict: Verdict
    pixel: Verdict
    rule: str  # a RULES name, or "pixels" when none fired
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _pixel(verdict: str) -> Verdict:
    value = verdict.strip().upper()
    for known in VERDICTS:
        if value == known:
            return known
    raise ValueError(f"pixel verdict {verdict!r} is not one of {', '.join(VERDICTS)}")


def _fires(rule: Rule, finding: Finding) -> bool:
    return finding.kind == rule.kind and finding.signature in rule.signatures


def combine(pixel_verdict: str, provenance: Provenance) -> Combined:
    """The combined verdict of a pixel verdict (FAKE/REAL/UNSURE) and a file's provenance."""
    pixel = _pixel(pixel_verdict)
    pixel_line = f"pixels: {pixel}"
    invalid = [f.line for f in provenance.findings if f.signature == "invalid"][:1]
    for rule in RULES:
        evidence = [f for f in provenance.findings if _fires(rule, f)]
        if evidence:
            verdict = rule.outcome[pixel]
            reasons = [f"{rule.why}. Evidence: [{evidence[0].source}] {evidence[0].line}"]
            if verdict != pixel:
                reasons.append(f"{pixel_line}, overridden to {verdict} by this rule")
            else:
                reasons.append(pixel_line)
            return Combined(verdict, pixel, rule.name, tuple(reasons + invalid))
    reasons = [PIXELS_STAND if provenance.found else NO_PROVENANCE, pixel_line]
    return Combined(pixel, pixel, "pixels", tuple(reasons + invalid))


def rules_markdown() -> str:
    """The rule table as the Markdown that docs/provenance.md shows."""
    rows = [
        "| rule | evidence (kind, signature) | pixels FAKE | pixels REAL | pixels UNSURE |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rule in RULES:
        outcome = " | ".join(rule.outcome[v] for v in VERDICTS)
        rows.append(f"| `{rule.name}` | {rule.kind}, {' or '.join(rule.signatures)} | {outcome} |")
    rows.append("| (none fires) | anything else, or nothing | FAKE | REAL | UNSURE |")
    return "\n".join(rows)
