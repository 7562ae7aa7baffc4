"""C2PA Content Credentials, read and validated offline with c2pa-python (``realfake[provenance]``).

No trust list is fetched and nothing else goes over the network: a signature that verifies is
"intact", and its signer is reported as not verified against a trust list, unless the caller
passes trust anchors (PEM) of its own.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from realfake.provenance.markers import generator_named, source_type_finding
from realfake.provenance.record import VALUE_CHARS, C2paAction, C2paClaim, Finding, Signature, clip

# c2pa-rs fetches a manifest stored at a remote URL, and OCSP answers, by default: both off.
# Measured: with the defaults, reading a file whose manifest is remote sends a GET to its URL.
OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
# Codes that say who signed is not on a trust list, not that anything was altered.
TRUST_CODES = ("signingCredential.untrusted", "signingCredential.ocsp.skipped")
MAX_ACTIONS = 32  # action lines per file; a hostile manifest may list thousands
INSTALL = "pip install 'realfake[provenance]'"
_REMOTE_URL = re.compile(r"(https?://\S+)")


def read_c2pa(
    data: bytes, mime: str | None, trust_anchors: str | None = None
) -> tuple[list[Finding], C2paClaim | None, list[str]]:
    """(findings, the claim, notes) of the C2PA manifest store in ``data``, if it has one."""
    try:
        import c2pa
    except ImportError:
        return [], None, [f"C2PA not checked: c2pa-python is not installed ({INSTALL})"]
    settings: dict[str, Any] = {"verify": dict(OFFLINE["verify"])}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    try:
        with c2pa.Context.from_dict(settings) as context:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
            if reader is None:  # no manifest store in the file
                return [], None, []
            with reader:
                state = reader.get_validation_state() or ""
                results = reader.get_validation_results() or {}
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        return _error_findings(str(exc), has_jumbf=b"jumb" in data), None, []
    claim = _claim(state, results, store, trust_checked=bool(trust_anchors))
    return _claim_findings(claim), claim, []


def _error_findings(message: str, has_jumbf: bool) -> list[Finding]:
    message = " ".join(message.split())
    if message.startswith("NotSupported"):
        return []  # a format c2pa does not read: nothing to say about C2PA
    if message.startswith("Remote"):
        url = _REMOTE_URL.search(message)
        where = url.group(1) if url else "a remote URL"
        return [
            Finding(
                "c2pa",
                "remote manifest",
                clip(message, VALUE_CHARS),
                f"C2PA Content Credentials are stored remotely ({clip(where, 120)}); not "
                "fetched (no network access), so nothing about them is verified",
            )
        ]
    if not has_jumbf:
        # c2pa-python also fails on a broken container that holds no C2PA at all (a JPEG cut
        # short): with no JUMBF box in the bytes there is no C2PA data to call unreadable.
        return []
    return [
        Finding(
            "c2pa",
            "manifest store",
            clip(message, VALUE_CHARS),
            f"C2PA data unreadable ({clip(message, 160)}); not used as evidence",
            "unreadable",
        )
    ]


def _failures(results: dict[str, Any]) -> list[str]:
    codes = [f.get("code", "?") for f in results.get("activeManifest", {}).get("failure", [])]
    for delta in results.get("ingredientDeltas", []) or []:
        failed = delta.get("validationDeltas", {}).get("failure", [])
        codes += [f.get("code", "?") for f in failed]
    return list(dict.fromkeys(codes))


def _agent(action: dict[str, Any]) -> str | None:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):
        agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
    return str(agent) if agent else None


def _generator(manifest: dict[str, Any]) -> str:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict) and info[0].get("name"):
        first = info[0]
        return " ".join(str(first[k]) for k in ("name", "version") if first.get(k))
    return str(manifest.get("claim_generator") or "unknown")


def _actions(store: dict[str, Any]) -> list[C2paAction]:
    """Actions of the active manifest first, then of the ingredients' manifests."""
    active = store.get("active_manifest")
    manifests: dict[str, Any] = store.get("manifests") or {}
    order = sorted(manifests, key=lambda label: label != active)
    out: list[C2paAction] = []
    for label in order:
        for assertion in manifests[label].get("assertions") or []:
            if not str(assertion.get("label", "")).startswith("c2pa.actions"):
                continue
            for action in (assertion.get("data") or {}).get("actions") or []:
                if isinstance(action, dict):
                    dst = action.get("digitalSourceType")
                    out.append(
                        C2paAction(
                            str(action.get("action", "?")),
                            str(dst) if dst else None,
                            _agent(action),
                            label,
                            label == active,
                        )
                    )
    return out


def _claim(
    state: str, results: dict[str, Any], store: dict[str, Any], trust_checked: bool
) -> C2paClaim:
    active = (store.get("manifests") or {}).get(store.get("active_manifest"), {})
    signed_by = active.get("signature_info") or {}
    signature: Signature = {"Trusted": "trusted", "Valid": "intact"}.get(state, "invalid")
    return C2paClaim(
        signature=signature,
        generator=_generator(active),
        signer=str(signed_by.get("common_name") or "unknown"),
        issuer=str(signed_by.get("issuer") or "unknown"),
        actions=tuple(_actions(store)),
        failures=tuple(_failures(results)),
        trust_checked=trust_checked,
    )


def _claim_findings(claim: C2paClaim) -> list[Finding]:
    who = f"signed by {claim.signer!r} (issuer {claim.issuer!r}), made by {claim.generator!r}"
    if claim.signature == "invalid":
        codes = [c for c in claim.failures if c not in TRUST_CODES] or ["(no code given)"]
        head = Finding(
            "c2pa",
            "signature",
            ", ".join(claim.failures),
            f"C2PA Content Credentials INVALID: the file was altered after signing, or the "
            f"manifest is corrupt ({', '.join(codes)}); {who}; not used as evidence of "
            "either REAL or FAKE",
            signature="invalid",
        )
    elif claim.signature == "trusted":
        head = Finding(
            "c2pa",
            "signature",
            claim.generator,
            f"C2PA Content Credentials {who}: signature intact, signer on the given trust list",
            signature="trusted",
        )
    else:
        trust = (
            "signer NOT on the given trust list"
            if claim.trust_checked
            else "signer not verified against a trust list (none is fetched: no network access)"
        )
        head = Finding(
            "c2pa",
            "signature",
            claim.generator,
            f"C2PA Content Credentials {who}: signed, signature intact; {trust}",
            signature="intact",
        )
    found = [head]
    for action in claim.actions[:MAX_ACTIONS]:
        found.append(_action_finding(action, claim))
    return found


def _action_finding(action: C2paAction, claim: C2paClaim) -> Finding:
    where = "" if action.active else f" (in ingredient manifest {action.manifest})"
    agent = f", software agent {action.software_agent!r}" if action.software_agent else ""
    if claim.signature == "invalid":
        told = f"declares {action.source_type}" if action.source_type else "declares no source"
        return Finding(
            "c2pa",
            action.action,
            action.source_type or "",
            f"C2PA action {action.action}{where}{agent} {told}: from an INVALID manifest, "
            "not evidence",
            signature="invalid",
        )
    signed = f"signed by {claim.signer!r}, claim generator {claim.generator!r}{agent}{where}"
    if action.source_type:
        field = f"{action.action} digitalSourceType"
        return source_type_finding("c2pa", field, action.source_type, claim.signature, signed)
    named = generator_named(action.software_agent or "")
    if named is not None and action.action == "c2pa.created":
        return Finding(
            "c2pa",
            action.action,
            action.software_agent or "",
            f"C2PA action {action.action} by the generator {named}; {signed}",
            "generated",
            claim.signature,
        )
    return Finding(
        "c2pa", action.action, action.software_agent or "", f"C2PA action {action.action}; {signed}"
    )
