"""Multipart uploads in, decisions out: form checks, decoding off the loop, per-file refusals."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from realfake.serve.images import ImageRefused
from realfake.serve.schemas import ErrorAnswer, ImageResult
from realfake.serve.service import Judged, Prepared, Service

MULTIPART = "multipart/form-data"


class Answer(Exception):
    """A refusal that carries a whole JSON answer (per-file errors), not just a detail."""

    def __init__(self, status: int, answer: ErrorAnswer) -> None:
        self.status = status
        self.answer = answer


def multipart_body(field: str, many: bool) -> dict[str, Any]:
    """OpenAPI request body of a multipart upload in ``field``."""
    binary = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": binary} if many else binary
    return {
        "requestBody": {
            "required": True,
            "content": {
                MULTIPART: {
                    "schema": {"type": "object", "required": [field], "properties": {field: schema}}
                }
            },
        }
    }


async def read_uploads(
    request: Request, service: Service, field: str, most: int
) -> list[tuple[str, bytes]]:
    """(file name, bytes) of the files in multipart ``field``; 413/415/422 for bad forms."""
    started = time.perf_counter()
    ctype = request.headers.get("content-type", "")
    # Media types are case-insensitive (RFC 9110 §8.3.1): Multipart/Form-Data is multipart.
    if ctype.split(";", 1)[0].strip().lower() != MULTIPART:
        if not ctype and request.headers.get("content-length", "0") in ("0", ""):
            raise HTTPException(422, f"empty request: send {MULTIPART} field {field!r}")
        raise HTTPException(415, f"expected {MULTIPART} with field {field!r}, got {ctype!r}")
    try:
        form = await request.form(max_files=most, max_fields=most)
    except StarletteHTTPException as exc:  # Starlette's word for a multipart it refused
        if "Too many files" in str(exc.detail):
            raise HTTPException(413, f"too many files: at most {most} per request") from None
        raise HTTPException(422, f"malformed multipart body: {exc.detail}") from None
    try:
        unknown = sorted({k for k in form if k != field})
        if unknown:
            raise HTTPException(422, f"unknown form field(s) {unknown}; send images in {field!r}")
        items = form.getlist(field)
        if not items:
            raise HTTPException(422, f"no file in form field {field!r}")
        if len(items) > most:
            raise HTTPException(413, f"too many files: at most {most} per request")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, UploadFile):
                raise HTTPException(422, f"form field {field!r} #{i + 1} is text, not a file")
            out.append((item.filename or f"file #{i + 1}", await item.read()))
    finally:
        await form.close()
    service.metrics.stage.labels("parse").observe(time.perf_counter() - started)
    return out


async def prepare(service: Service, name: str, data: bytes, endpoint: str) -> Any:
    """The prepared upload, or the ImageResult saying why the file was refused."""
    try:
        return await service.prepare(data, name)
    except ImageRefused as refused:
        service.metrics.errors.labels(endpoint, refused.kind).inc()
        return ImageResult(file=name, error=f"{name}: {refused.reason}", status=refused.status)


async def prepare_one(service: Service, name: str, data: bytes, endpoint: str) -> Prepared:
    """The prepared upload of a one-file endpoint; its refusal is the request's status."""
    image = await prepare(service, name, data, endpoint)
    if isinstance(image, ImageResult):
        raise HTTPException(image.status or 415, image.error)
    return image


async def classify_uploads(
    request: Request, service: Service, field: str, most: int, endpoint: str
) -> list[ImageResult]:
    """One ImageResult per uploaded file, in order; Answer/HTTPException when none is usable."""
    files = await read_uploads(request, service, field, most)
    started = time.perf_counter()
    # Concurrently: the decoder's semaphores bound the work in flight, not this request.
    prepared = await asyncio.gather(*(prepare(service, n, d, endpoint) for n, d in files))
    names = [name for name, _ in files]
    del files  # the uploaded bytes are not kept while the batch waits for its forward pass
    service.metrics.stage.labels("decode").observe(time.perf_counter() - started)
    good = [(i, x) for i, x in enumerate(prepared) if not isinstance(x, ImageResult)]
    refused: list[ImageResult] = [x for x in prepared if isinstance(x, ImageResult)]
    if not good:
        first = refused[0]
        if len(refused) == 1:
            raise HTTPException(first.status or 415, first.error)
        detail = f"none of the {len(refused)} files is a usable image"
        raise Answer(first.status or 415, ErrorAnswer(detail=detail, results=refused))
    found, timing = await service.classify([x for _, x in good])
    service.metrics.stage.labels("wait").observe(timing.wait_s)
    service.metrics.stage.labels("forward").observe(timing.forward_s)
    by_row = dict(zip((i for i, _ in good), found, strict=True))
    return [
        answer(names[i], j) if (j := by_row.get(i)) is not None else prepared[i]
        for i in range(len(prepared))
    ]


def answer(name: str, judged: Judged) -> ImageResult:
    """The JSON answer on one classified file: the pixels' decision and the combined verdict."""
    d = judged.decision
    return ImageResult(
        file=name,
        label=d.label,
        index=d.index,
        probabilities=d.probabilities,
        threshold=d.threshold,
        verdict=judged.verdict,
        reason=judged.reason,
        pixel_verdict=d.verdict,
        evidence=judged.evidence,
        provenance=judged.provenance,
    )
