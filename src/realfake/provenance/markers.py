"""What the markers mean: IPTC digital source types, generator names, SD front ends' text keys.

Every vocabulary the reader recognises is a table here, so that adding a generator or a front
end is one line. Each function turns a raw value into a ``Finding``; none reads files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from realfake.provenance.record import VALUE_CHARS, Finding, Kind, Signature, Source, clip

UNSIGNED = "unsigned: it can be forged or stripped"

# IPTC NewsCodes "Digital Source Type" (cv.iptc.org/newscodes/digitalsourcetype/), the
# vocabulary of both Iptc4xmpExt:DigitalSourceType and C2PA actions' digitalSourceType.
# "generated": made by an algorithm, not sampled from the world (the FAKE class);
# "capture": sampled from the world by a camera or scanner of film; the rest say how a capture
# or artwork was worked on and decide nothing here.
SOURCE_TYPES: dict[str, tuple[Kind, str]] = {
    "trainedAlgorithmicMedia": ("generated", "created by a trained model (generative AI)"),
    "compositeWithTrainedAlgorithmicMedia": (
        "generated",
        "a composite with elements made by generative AI (e.g. generative fill)",
    ),
    "algorithmicMedia": ("generated", "created by an algorithm without sampled data"),
    "digitalCapture": ("capture", "a digital capture of the real world (camera)"),
    "negativeFilm": ("capture", "digitised from a film negative"),
    "positiveFilm": ("capture", "digitised from a film positive (slide)"),
    "print": ("info", "digitised from a print"),
    "humanEdits": ("info", "a capture or artwork edited by a person"),
    "minorHumanEdits": ("info", "a capture with minor human edits"),
    "algorithmicallyEnhanced": ("info", "a capture enhanced by an algorithm"),
    "compositeCapture": ("info", "a composite of captured elements"),
    "compositeSynthetic": ("info", "a composite including synthetic (not AI) elements"),
    "digitalArt": ("info", "digital art made by a person with software"),
    "virtualRecording": ("info", "a recording of a virtual event"),
    "screenCapture": ("info", "a screen capture"),
    "dataDrivenMedia": ("info", "rendered from data (e.g. sensor data)"),
    "softwareImage": ("info", "created by software (deprecated code)"),
}

# Generator names as tools write them into EXIF Software, XMP CreatorTool, IPTC
# OriginatingProgram, PNG "Software" or a C2PA softwareAgent. Word boundaries keep "Imagen"
# from matching "Imagenomic"; only names that are generators and nothing else are listed.
GENERATORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), name)
    for pattern, name in (
        (r"\bdall[^a-z0-9]{0,2}e\b", "DALL·E"),  # DALL-E, DALL·E, DALLE, not "Dallie"
        (r"\bfirefly\b", "Adobe Firefly"),
        (r"\bmidjourney\b", "Midjourney"),
        (r"\bstable[\s-]?diffusion\b", "Stable Diffusion"),
        (r"\bnovelai\b", "NovelAI"),
        (r"\bimagen\b", "Google Imagen"),
        (r"\bcomfyui\b", "ComfyUI"),
        (r"\bautomatic1111\b|stable-diffusion-webui", "AUTOMATIC1111"),
        (r"\binvokeai\b", "InvokeAI"),
        (r"\bfooocus\b", "Fooocus"),
        (r"\bdraw things\b", "Draw Things"),
        (r"\bdiffusionbee\b", "DiffusionBee"),
        (r"\bleonardo\.ai\b", "Leonardo.Ai"),
        (r"\bideogram\b", "Ideogram"),
        (r"\bbing image creator\b", "Bing Image Creator"),
        (r"\bflux\.1\b", "FLUX.1"),
        (r"\bcraiyon\b", "Craiyon"),
        (r"\bnightcafe\b", "NightCafe"),
        (r"\bgpt-image-\d|\bchatgpt\b|\bopenai\b", "OpenAI"),
    )
)

# AUTOMATIC1111 (and Forge, SD.Next, Fooocus's A1111 scheme) write "prompt\nNegative prompt:
# ...\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, ..." into "parameters".
_A1111_STEPS = re.compile(r"\bSteps: *\d+")
_A1111_OTHER = re.compile(r"\b(Sampler|Seed|CFG scale|Model hash|Negative prompt): ")


def source_type(uri: str) -> tuple[Kind, str]:
    """(kind, meaning) of an IPTC digital source type, given as a URI or a bare code."""
    code = uri.strip().rstrip("/").rsplit("/", 1)[-1]
    if code in SOURCE_TYPES:
        return SOURCE_TYPES[code]
    return "info", f"an unrecognised digital source type {code!r}"


def generator_named(text: str) -> str | None:
    """The known generator that ``text`` (a software name) names, if any."""
    for pattern, name in GENERATORS:
        if pattern.search(text):
            return name
    return None


def looks_like_a1111(text: str) -> bool:
    """Whether ``text`` reads as AUTOMATIC1111-style generation parameters."""
    return bool(_A1111_STEPS.search(text) and _A1111_OTHER.search(text))


def _json(text: str) -> Any:
    """``text`` parsed as JSON, or None (malformed, or nested deep enough to be hostile)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def looks_like_comfy_prompt(text: str) -> bool:
    """Whether ``text`` is a ComfyUI API prompt: {node id: {"class_type": ..., "inputs": ...}}."""
    data = _json(text)
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(n, dict) and "class_type" in n for n in data.values())
    )


def looks_like_comfy_workflow(text: str) -> bool:
    """Whether ``text`` is a ComfyUI workflow graph: {"nodes": [...], "links": ...}."""
    data = _json(text)
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def looks_like_novelai_comment(text: str) -> bool:
    """Whether ``text`` is NovelAI's "Comment": JSON with steps and a sampler or seed."""
    data = _json(text)
    return isinstance(data, dict) and "steps" in data and ("sampler" in data or "seed" in data)


def _nonempty(text: str) -> bool:
    return bool(text.strip())


# PNG text keys that Stable Diffusion front ends write: key (lower case) -> (front end, test
# that the value is theirs). A key alone is not enough where it is a common word ("prompt",
# "comment"): the value must have the front end's shape.
SD_TEXT_KEYS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "parameters": ("AUTOMATIC1111-style", looks_like_a1111),
    "prompt": ("ComfyUI prompt", looks_like_comfy_prompt),
    "workflow": ("ComfyUI workflow", looks_like_comfy_workflow),
    "invokeai_metadata": ("InvokeAI", _nonempty),
    "invokeai_graph": ("InvokeAI graph", _nonempty),
    "sd-metadata": ("InvokeAI 2", _nonempty),
    "dream": ("InvokeAI 1 (dream)", _nonempty),
    "fooocus_scheme": ("Fooocus", _nonempty),
    "comment": ("NovelAI", looks_like_novelai_comment),
}


def _quote(value: str, limit: int = 80) -> str:
    return repr(clip(" ".join(value.split()), limit))


def software_finding(source: Source, field: str, value: str) -> Finding:
    """A software-name field: names a generator (an unsigned declaration) or is only shown."""
    name = generator_named(value)
    if name is not None:
        return Finding(
            source,
            field,
            clip(value, VALUE_CHARS),
            f"{field} names the generator {name} ({_quote(value)}); {UNSIGNED}",
            "generated",
        )
    return Finding(source, field, clip(value, VALUE_CHARS), f"{field}: {_quote(value)}")


def source_type_finding(
    source: Source, field: str, value: str, signature: Signature = "none", where: str = ""
) -> Finding:
    """An IPTC digital source type, unsigned (XMP) unless ``signature`` says otherwise."""
    kind, meaning = source_type(value)
    protection = UNSIGNED if signature == "none" else where
    return Finding(
        source,
        field,
        clip(value, VALUE_CHARS),
        f"{field} = {value.strip().rsplit('/', 1)[-1]}: {meaning}; {protection}",
        kind,
        signature,
    )


def parameters_text_finding(source: Source, field: str, value: str) -> Finding | None:
    """Generation parameters written as free text (PNG text, EXIF comments), or None."""
    if looks_like_a1111(value):
        return Finding(
            source,
            field,
            clip(value, VALUE_CHARS),
            f"{field} holds Stable Diffusion generation parameters (AUTOMATIC1111-style: "
            f"{_quote(value, 60)}); {UNSIGNED}",
            "generated",
        )
    return None


def png_text_finding(key: str, value: str) -> Finding:
    """A PNG text chunk: a front end's generation parameters, a software name, or only shown."""
    lower = key.lower()
    if lower == "software":
        return software_finding("png-text", key, value)
    known = SD_TEXT_KEYS.get(lower)
    if known is not None and known[1](value):
        return Finding(
            "png-text",
            key,
            clip(value, VALUE_CHARS),
            f"text chunk {key!r} holds Stable Diffusion generation data ({known[0]}: "
            f"{_quote(value, 60)}); {UNSIGNED}",
            "generated",
        )
    found = parameters_text_finding("png-text", key, value)
    if found is not None:
        return found
    return Finding(
        "png-text", key, clip(value, VALUE_CHARS), f"text chunk {key!r}: {_quote(value)}"
    )
