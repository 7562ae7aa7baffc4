"""XMP packets: IPTC digital source type and AI fields, CreatorTool, and the C2PA pointer."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from realfake.provenance.containers import MAX_XMP_BYTES
from realfake.provenance.markers import software_finding, source_type_finding
from realfake.provenance.record import VALUE_CHARS, Finding, clip

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP = "http://ns.adobe.com/xap/1.0/"
DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
TIFF = "http://ns.adobe.com/tiff/1.0/"

# Properties read: (namespace, name) -> (prefixed name, how the value is judged). "dst" is an
# IPTC digital source type; "ai" an IPTC 2025.1 property that exists only for generative AI
# (so its presence declares it); "software" a tool name; "info" is shown and decides nothing.
PROPERTIES: dict[tuple[str, str], tuple[str, str]] = {
    (IPTC_EXT, "DigitalSourceType"): ("Iptc4xmpExt:DigitalSourceType", "dst"),
    (IPTC_EXT, "AISystemUsed"): ("Iptc4xmpExt:AISystemUsed", "ai"),
    (IPTC_EXT, "AISystemVersionUsed"): ("Iptc4xmpExt:AISystemVersionUsed", "info"),
    (IPTC_EXT, "AIPromptInformation"): ("Iptc4xmpExt:AIPromptInformation", "info"),
    (XMP, "CreatorTool"): ("xmp:CreatorTool", "software"),
    (TIFF, "Software"): ("tiff:Software", "software"),
    (PHOTOSHOP, "Credit"): ("photoshop:Credit", "info"),
    (DC, "creator"): ("dc:creator", "info"),
    (DC, "description"): ("dc:description", "info"),
    (DCTERMS, "provenance"): ("dcterms:provenance", "c2pa-pointer"),
}
_FORBIDDEN = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _value(element: ET.Element) -> str:
    """A property's value: its rdf:resource, its rdf:Alt/Seq/Bag items, or its text."""
    resource = element.get(f"{{{RDF}}}resource")
    if resource is not None:
        return resource
    items = [li.text.strip() for li in element.iter(f"{{{RDF}}}li") if li.text and li.text.strip()]
    if items:
        return "; ".join(items)
    return (element.text or "").strip()


def _judge(field: str, how: str, value: str) -> Finding:
    if how == "dst":
        return source_type_finding("xmp", field, value)
    if how == "ai":
        return Finding(
            "xmp",
            field,
            clip(value, VALUE_CHARS),
            f"{field} = {value!r}: the file declares it was made with an AI system; "
            "unsigned: it can be forged or stripped",
            "generated",
        )
    if how == "software":
        return software_finding("xmp", field, value)
    if how == "c2pa-pointer":
        return Finding(
            "xmp",
            field,
            clip(value, VALUE_CHARS),
            f"{field} points to C2PA Content Credentials at {clip(value, 120)!r} (not fetched: "
            "no network access; nothing about them is verified)",
        )
    return Finding("xmp", field, clip(value, VALUE_CHARS), f"{field}: {clip(value, 80)!r}")


def xmp_findings(packet: bytes) -> list[Finding]:
    """The findings of one XMP packet; a malformed packet gives one "unreadable" finding."""
    if len(packet) > MAX_XMP_BYTES:
        return [_unreadable(f"it is {len(packet):,} bytes, over the {MAX_XMP_BYTES:,} limit")]
    if _FORBIDDEN.search(packet):
        # XMP never needs a DTD; entity declarations are how XML bombs and external fetches
        # come in, so such a packet is refused rather than parsed.
        return [_unreadable("it declares a DTD or entities, which XMP never needs")]
    start = packet.find(b"<x:xmpmeta")
    end = packet.rfind(b"</x:xmpmeta>")
    if start >= 0:
        packet = packet[start : end + len(b"</x:xmpmeta>")] if end > start else packet[start:]
    try:
        root = ET.fromstring(packet)
    except ET.ParseError as exc:
        return [_unreadable(f"truncated or malformed XML ({exc})")]
    found: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for element in root.iter():
        # A property is either an element or an attribute of rdf:Description (RDF shorthand).
        candidates = [(_split(element.tag), element, None)]
        candidates += [(_split(name), None, value) for name, value in element.attrib.items()]
        for key, node, attribute in candidates:
            known = PROPERTIES.get(key)
            if known is None:
                continue
            value = _value(node) if node is not None else (attribute or "").strip()
            if not value or (key, value) in seen:
                continue
            seen.add((key, value))
            found.append(_judge(known[0], known[1], value))
    return found


def _unreadable(why: str) -> Finding:
    return Finding("xmp", "packet", "", f"XMP packet unreadable: {why}", "unreadable")
