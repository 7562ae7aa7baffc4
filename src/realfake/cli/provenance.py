"""``realfake provenance``: what each file's metadata says about its origin, line by line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "provenance",
        help="C2PA, IPTC/XMP, PNG text and EXIF evidence of each file's origin",
        description="Print what each file says about its origin, one line per marker: C2PA "
        "Content Credentials (validated offline: no trust list is fetched), the IPTC digital "
        "source type in XMP, Stable Diffusion generation data in PNG text chunks, EXIF "
        "Software and camera fields. Reads headers only; decodes no pixels; never goes online.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="image files")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--pixel",
        choices=("FAKE", "REAL", "UNSURE"),
        type=str.upper,
        default=None,
        help="also combine this pixel verdict with each file's provenance (the rule table of "
        "docs/provenance.md) and print the combined verdict",
    )
    parser.add_argument(
        "--trust-anchors",
        metavar="PEM",
        default=None,
        help="PEM file of root certificates a C2PA signer must chain to, to count as trusted "
        "(default: none, so a valid signature's signer is reported as not verified)",
    )
    parser.set_defaults(handler=_provenance)


def _provenance(args: argparse.Namespace) -> int:
    from realfake.errors import DataError
    from realfake.provenance import combine, read_file

    anchors = None
    if args.trust_anchors is not None:
        try:
            anchors = Path(args.trust_anchors).read_text()
        except (OSError, UnicodeError) as exc:
            what = f"--trust-anchors {args.trust_anchors}"
            raise DataError(f"{what} cannot be read ({exc})") from None
        if "-----BEGIN CERTIFICATE-----" not in anchors:
            raise DataError(
                f"--trust-anchors {args.trust_anchors} holds no PEM certificate "
                "(-----BEGIN CERTIFICATE-----)"
            )
    documents = []
    for file in args.files:
        found = read_file(file, trust_anchors=anchors)
        combined = None if args.pixel is None else combine(args.pixel, found)
        if args.json:
            document = found.to_dict()
            if combined is not None:
                document["combined"] = combined.to_dict()
            documents.append(document)
            continue
        print(f"{file} ({found.format or 'format not recognised'})")
        for line in found.lines():
            print(f"  {line}")
        if combined is not None:
            print(f"  combined with pixels {combined.pixel}: {combined.verdict} ({combined.rule})")
            for reason in combined.reasons:
                print(f"    {reason}")
    if args.json:
        print(json.dumps(documents, indent=2, ensure_ascii=False))
    return 0
