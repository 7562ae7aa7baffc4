"""create_app(): the FastAPI application of one model. Building it starts nothing.

Endpoints: GET / (the page), /health, /ready, /metadata, /metrics, /docs; POST /predict (one
or many images), /predict/ (the MLOps write-up's contract), /explain (a Grad-CAM PNG).

Error contract: a file that is not an image is 415 and a file declaring more pixels than the
limit is 413, each naming the file; in a /predict of several files each refused file gets an
error entry, and the answer is 200 when at least one file was classified (else the first refused
file's status). A body over the limit or too many files: 413; an empty request, a missing or
unknown field: 422; a body that is not multipart: 415; the model not loaded yet: 503. An
unexpected failure is a 500 with an error id that the log repeats beside the traceback.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from realfake import __version__
from realfake.serve.images import ImageRefused, prepare_upload
from realfake.serve.limits import BodyLimit, ErrorIds, WatchedSend
from realfake.serve.metrics import ServiceMetrics
from realfake.serve.model import backend_name, checkpoint_label
from realfake.serve.schemas import (
    ErrorAnswer,
    Health,
    ImageResult,
    LegacyPrediction,
    Limits,
    Metadata,
    PredictResponse,
    Ready,
)
from realfake.serve.service import Service
from realfake.serve.settings import ServeSettings

log = logging.getLogger("realfake.serve")

STATIC = Path(str(package_files("realfake.serve") / "static"))
# Small uploads decode on the event loop (a 32 px JPEG takes ~0.1 ms, less than a thread hop);
# larger ones in a thread, so one big photo never stalls every other request.
INLINE_DECODE_BYTES = 64 * 1024

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text}
    for code, text in {
        401: "missing or wrong X-API-Key (only when the service has a key)",
        413: "body over the limit, too many files, or an image with too many pixels",
        415: "not an image (the file is named), or a body that is not multipart/form-data",
        422: "empty request, missing or unknown form field, empty file",
        503: "the model is still loading",
    }.items()
}


def _multipart(field: str, many: bool) -> dict[str, Any]:
    """OpenAPI request body of a multipart upload in ``field``."""
    binary = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": binary} if many else binary
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": [field], "properties": {field: schema}}
                }
            },
        }
    }


def create_app(model: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The service of ``model`` (a Predictor, or a run / .ckpt / .onnx path loaded at startup)."""
    settings = settings or ServeSettings()
    metrics = ServiceMetrics()
    service = Service(model, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="realfake",
        version=__version__,
        summary="Tells real photographs from AI-generated images; Grad-CAM shows the evidence.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings

    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    async def require_key(key: str | None = Depends(key_header)) -> None:
        if settings.api_key is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    def require_ready() -> None:
        if not service.ready:
            detail = service.load_error or "the model is loading; retry shortly"
            raise HTTPException(503, detail, headers={"Retry-After": "1"})

    protected = [Depends(require_key)]

    # --- the page ---------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # --- probes -------------------------------------------------------------------------------

    @app.get("/health", response_model=Health, summary="The process is alive")
    async def health() -> Health:
        p = service.predictor
        return Health(
            status="ok",
            model_loaded=service.ready,
            device=settings.device if p is None else str(getattr(p, "device", settings.device)),
            checkpoint=checkpoint_label(p) if p is not None else _source_name(model),
            error=service.load_error,
        )

    @app.get(
        "/ready",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "not ready yet"}},
        summary="200 once the model is loaded and warmed up by one forward pass",
    )
    async def ready() -> Any:
        if service.ready:
            return Ready(ready=True, detail="model loaded and warmed up")
        detail = service.load_error or "loading the model"
        return JSONResponse(Ready(ready=False, detail=detail).model_dump(), status_code=503)

    @app.get("/metadata", response_model=Metadata, dependencies=protected, responses=ERRORS)
    async def metadata() -> Metadata:
        require_ready()
        p = service.predictor
        return Metadata(
            model=p.spec.model,
            classes=list(p.classes),
            image_size=p.image_size,
            resize=p.spec.resize,
            flip_tta=p.spec.flip_tta,
            positive_class=p.spec.positive_class,
            threshold=service.threshold,
            backend=backend_name(p),
            device=str(getattr(p, "device", settings.device)),
            checkpoint=checkpoint_label(p),
            checkpoint_sha256=p.sha256,
            version=__version__,
            explain=service.can_explain,
            api_key_required=settings.api_key is not None,
            limits=Limits(
                max_body_bytes=settings.max_body_bytes,
                max_files=settings.max_files,
                max_pixels=settings.max_pixels,
                max_batch=settings.max_batch,
                batch_wait_ms=settings.batch_wait_ms,
            ),
        )

    @app.get("/metrics", dependencies=protected, summary="Prometheus metrics (text format)")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    # --- images in ----------------------------------------------------------------------------

    async def uploads(request: Request, field: str, most: int) -> list[tuple[str, bytes]]:
        """(file name, bytes) of the files in multipart ``field``; 413/415/422 for bad forms."""
        started = time.perf_counter()
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            if not ctype and request.headers.get("content-length", "0") in ("0", ""):
                raise HTTPException(422, f"empty request: send multipart/form-data field {field!r}")
            raise HTTPException(
                415, f"expected multipart/form-data with field {field!r}, got {ctype!r}"
            )
        try:
            form = await request.form(max_files=most, max_fields=most)
        except StarletteHTTPException as exc:  # Starlette's word for a multipart it refused
            if "Too many files" in str(exc.detail):
                raise HTTPException(413, f"too many files: at most {most} per request") from None
            raise HTTPException(422, f"malformed multipart body: {exc.detail}") from None
        try:
            unknown = sorted({k for k in form if k != field})
            if unknown:
                raise HTTPException(
                    422, f"unknown form field(s) {unknown}; send images in {field!r}"
                )
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
        metrics.stage.labels("parse").observe(time.perf_counter() - started)
        return out

    async def prepare(name: str, data: bytes, endpoint: str) -> Any:
        """The prepared image, or the ImageResult saying why the file was refused."""
        try:
            if len(data) <= INLINE_DECODE_BYTES:
                return prepare_upload(service.predictor, data, settings.max_pixels)
            return await run_in_threadpool(
                prepare_upload, service.predictor, data, settings.max_pixels
            )
        except ImageRefused as refused:
            metrics.errors.labels(endpoint, refused.kind).inc()
            return ImageResult(file=name, error=f"{name}: {refused.reason}", status=refused.status)

    async def classify_uploads(
        request: Request, field: str, most: int, endpoint: str
    ) -> list[ImageResult]:
        require_ready()
        files = await uploads(request, field, most)
        started = time.perf_counter()
        prepared = [await prepare(name, data, endpoint) for name, data in files]
        metrics.stage.labels("decode").observe(time.perf_counter() - started)
        good = [(i, x) for i, x in enumerate(prepared) if not isinstance(x, ImageResult)]
        results: list[ImageResult] = [x for x in prepared if isinstance(x, ImageResult)]
        if good:
            found, timing = await service.classify([x for _, x in good])
            metrics.stage.labels("wait").observe(timing.wait_s)
            metrics.stage.labels("forward").observe(timing.forward_s)
            by_row = dict(zip((i for i, _ in good), found, strict=True))
            results = [
                ImageResult(
                    file=files[i][0],
                    label=d.label,
                    index=d.index,
                    probabilities=d.probabilities,
                    threshold=d.threshold,
                )
                if (d := by_row.get(i)) is not None
                else prepared[i]
                for i in range(len(files))
            ]
            return results
        first = results[0]
        if len(results) == 1:
            raise HTTPException(first.status or 415, first.error)
        answer = ErrorAnswer(
            detail=f"none of the {len(results)} files is a usable image", results=results
        )
        raise _Answer(first.status or 415, answer)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        dependencies=protected,
        responses=ERRORS,
        openapi_extra=_multipart("files", many=True),
        summary="Classify one or many images (multipart field 'files', repeated)",
    )
    async def predict(request: Request) -> PredictResponse:
        results = await classify_uploads(request, "files", settings.max_files, "/predict")
        p = service.predictor
        return PredictResponse(
            results=results, model=p.spec.model, positive_class=p.spec.positive_class
        )

    @app.post(
        "/predict/",
        response_model=LegacyPrediction,
        dependencies=protected,
        responses=ERRORS,
        openapi_extra=_multipart("data", many=False),
        summary="The MLOps write-up's contract: one image in field 'data'",
    )
    async def predict_legacy(request: Request) -> LegacyPrediction:
        (result,) = await classify_uploads(request, "data", 1, "/predict/")
        return LegacyPrediction(prediction=result.label, probs=result.probabilities)

    @app.post(
        "/explain",
        dependencies=protected,
        responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "the overlay"}},
        response_class=Response,
        openapi_extra=_multipart("file", many=False),
        summary="Grad-CAM overlay (PNG) of one image in field 'file'",
    )
    async def explain(
        request: Request,
        target: str | None = Query(None, description="class to explain (default: the label)"),
    ) -> Response:
        require_ready()
        if not service.can_explain:
            raise HTTPException(501, "Grad-CAM needs the torch backend; this service runs ONNX")
        if target is not None and target not in service.predictor.classes:
            raise HTTPException(422, f"target {target!r} is not one of {service.predictor.classes}")
        ((name, data),) = await uploads(request, "file", 1)
        image = await prepare(name, data, "/explain")
        if isinstance(image, ImageResult):
            raise HTTPException(image.status or 415, image.error)
        done = await service.explain(image, target)
        d = done.decision
        headers = {
            "X-Prediction": d.label,
            "X-Probability": f"{d.probabilities[d.label]:.6f}",
            "X-Explained-Class": done.target,
        }
        return Response(done.png, media_type="image/png", headers=headers)

    @app.exception_handler(_Answer)
    async def answer(request: Request, exc: _Answer) -> JSONResponse:
        return JSONResponse(exc.answer.model_dump(exclude_none=True), status_code=exc.status)

    # --- edges: innermost first ---------------------------------------------------------------

    endpoints = {route.path for route in app.routes if hasattr(route, "methods")}

    def endpoint_of(path: str) -> str:
        if path in endpoints:
            return path
        return "/static" if path.startswith("/static/") else "other"

    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        on_refused=lambda path: metrics.errors.labels(endpoint_of(path), "body_too_large").inc(),
    )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key"],
        )
    app.add_middleware(
        ErrorIds, on_error=lambda path: metrics.errors.labels(endpoint_of(path), "internal").inc()
    )
    app.add_middleware(RequestMetrics, metrics=metrics, endpoint_of=endpoint_of)
    return app


class _Answer(Exception):
    """A refusal that carries a whole JSON answer (per-file errors), not just a detail."""

    def __init__(self, status: int, answer: ErrorAnswer) -> None:
        self.status = status
        self.answer = answer


class RequestMetrics:
    """Counts every request by endpoint and status and times it (pure ASGI, outermost)."""

    def __init__(self, app: Any, metrics: ServiceMetrics, endpoint_of: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoint_of = endpoint_of

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:
            status = watched.status or 500  # no answer went out: counted as a failure
            endpoint = self.endpoint_of(scope["path"])
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            if 400 <= status < 500:
                self.metrics.errors.labels(endpoint, f"http_{status}").inc()


def _source_name(model: Any) -> str:
    return Path(model).name if isinstance(model, (str, Path)) else ""
