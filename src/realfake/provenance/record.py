"""The typed record of what a file says about its origin: findings, the C2PA claim, notes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Source = Literal["c2pa", "xmp", "iptc", "png-text", "exif"]
# What a finding declares: AI or algorithmic generation, a camera capture, nothing decisive, or
# a marker that is there but could not be read.
Kind = Literal["generated", "capture", "info", "unreadable"]
# How far a finding is protected: "none" (anyone can write or strip it), "intact" (a C2PA
# signature that verifies, by a signer not checked against a trust list), "trusted" (verifies
# and chains to a configured trust anchor), "invalid" (a C2PA signature that fails: tampered).
Signature = Literal["none", "intact", "trusted", "invalid"]

NO_PROVENANCE = "no provenance found; absence proves nothing (metadata is easily stripped)"
VALUE_CHARS = 2000  # of a raw value kept in the record: prompts and workflows run to 100 kB


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


@dataclass(frozen=True)
class Finding:
    """One marker in the file: where it was, its raw value, and what it means in plain words."""

    source: Source
    field: str  # the marker's own name: "Iptc4xmpExt:DigitalSourceType", "parameters", ...
    value: str  # the raw value, clipped to VALUE_CHARS
    line: str  # the plain-language line shown to people
    kind: Kind = "info"
    signature: Signature = "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class C2paAction:
    """One action of a C2PA manifest (c2pa.created, c2pa.edited...)."""

    action: str
    source_type: str | None  # the digitalSourceType URI, when the action declares one
    software_agent: str | None
    manifest: str  # the manifest's label
    active: bool  # in the active manifest (else in an ingredient's)


@dataclass(frozen=True)
class C2paClaim:
    """The C2PA Content Credentials of a file, as validated offline."""

    signature: Signature  # "intact", "trusted" or "invalid"
    generator: str  # the active manifest's claim generator
    signer: str  # the signing certificate's common name
    issuer: str  # the signing certificate's issuer (organisation)
    actions: tuple[C2paAction, ...]
    failures: tuple[str, ...]  # validation failure codes, trust codes included
    trust_checked: bool  # False: no trust list was given, so the signer is not verified

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class Provenance:
    """Everything a file says about its origin, marker by marker."""

    name: str
    format: str | None  # "png", "jpeg", "webp"... None when not an image format known here
    findings: tuple[Finding, ...]
    c2pa: C2paClaim | None = None
    notes: tuple[str, ...] = ()  # what could not be checked, and why

    @property
    def found(self) -> bool:
        """Whether any marker was read (an unreadable one is not provenance)."""
        return any(f.kind != "unreadable" for f in self.findings)

    def lines(self) -> list[str]:
        """The evidence lines shown to people, one per finding, then notes."""
        out = [f"[{f.source}] {f.line}" for f in self.findings]
        if not self.found:
            out.append(NO_PROVENANCE)
        return out + list(self.notes)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the lines as shown."""
        return {
            "name": self.name,
            "format": self.format,
            "found": self.found,
            "findings": [f.to_dict() for f in self.findings],
            "c2pa": None if self.c2pa is None else self.c2pa.to_dict(),
            "notes": list(self.notes),
            "lines": self.lines(),
        }
