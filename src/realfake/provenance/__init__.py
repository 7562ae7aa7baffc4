"""Evidence besides pixels: what a file's metadata says about its origin, and the combined verdict.

``read_provenance(data)`` reads C2PA Content Credentials, XMP (IPTC digital source type), IPTC,
PNG text chunks and EXIF from a file's headers; ``combine(pixel_verdict, provenance)`` applies
the rule table ``RULES`` to a pixel model's FAKE/REAL/UNSURE.
"""

from realfake.provenance.reader import read_file, read_provenance
from realfake.provenance.record import C2paAction, C2paClaim, Finding, Provenance
from realfake.provenance.verdict import RULES, Combined, Rule, combine

__all__ = [
    "RULES",
    "C2paAction",
    "C2paClaim",
    "Combined",
    "Finding",
    "Provenance",
    "Rule",
    "combine",
    "read_file",
    "read_provenance",
]
