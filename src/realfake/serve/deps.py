"""FastAPI dependencies: the app's Service, settings and ready Scorer, and the API key check."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from realfake.inference import Scorer
from realfake.serve.schemas import ErrorAnswer
from realfake.serve.service import Service
from realfake.serve.settings import ServeSettings


def get_service(request: Request) -> Service:
    """The service of the app that received the request."""
    return request.app.state.service


def get_settings(request: Request) -> ServeSettings:
    return request.app.state.service.settings


_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)


async def require_key(
    settings: Annotated[ServeSettings, Depends(get_settings)],
    key: Annotated[str | None, Depends(_KEY_HEADER)],
) -> None:
    """401 unless the service has no key or the request carries it."""
    if settings.api_key is None:
        return
    if key is None or not hmac.compare_digest(key.encode(), settings.api_key.encode()):
        raise HTTPException(401, "missing or wrong X-API-Key header")


def ready_scorer(service: Annotated[Service, Depends(get_service)]) -> Scorer:
    """The loaded scorer; 503 (retry in a second) while it loads or when it failed to."""
    if not service.ready or service.scorer is None:
        detail = service.load_error or "the model is loading; retry shortly"
        raise HTTPException(503, detail, headers={"Retry-After": "1"})
    return service.scorer


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[ServeSettings, Depends(get_settings)]
ScorerDep = Annotated[Scorer, Depends(ready_scorer)]
PROTECTED = [Depends(require_key)]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text}
    for code, text in {
        401: "missing or wrong X-API-Key (only when the service has a key)",
        413: "body over the limit, too many files, or an image with too many pixels",
        415: "not an image (the file is named), or a body that is not multipart/form-data",
        422: "empty request, missing or unknown form field, empty file",
        503: "the model is still loading, or failed to load (the detail says why)",
    }.items()
}


def rule_headers(service: Service) -> dict[str, str]:
    """The decision rule as response headers (for answers whose body is not ours to extend)."""
    record = service.rule_record
    assert record is not None
    threshold = "none" if record.threshold is None else f"{record.threshold:.6f}"
    # Header values are latin-1 on the wire; the rule's text is ASCII but for a path's name.
    text = record.text.encode("ascii", "replace").decode()
    return {"X-Decision-Rule": text, "X-Threshold": threshold}
