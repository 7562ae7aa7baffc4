"""create_app(): the FastAPI application of one model. Building it starts nothing.

Endpoints (``realfake.serve.routers``): GET / (the page), /health, /ready, /metadata,
/model-card, /metrics, /examples and /examples/{name} (images to try), /docs (Swagger UI from
the package's own files, no CDN); POST /predict (one or many images; verdicts with the file's
provenance), /predict/ (the MLOps write-up's contract), /explain (a Grad-CAM PNG). Every GET
answers HEAD.

Error contract: a file that is not an image is 415 and a file declaring more pixels than the
limit is 413, each naming the file; in a /predict of several files each refused file gets an
error entry, and the answer is 200 when at least one file was classified (else the first refused
file's status). A body over the limit or too many files: 413; an empty request, a missing or
unknown field: 422; a body that is not multipart: 415; the model not loaded (yet): 503. A client
that closes its connection mid-upload gets 499 (nobody reads it) and one log line. An unexpected
failure is a 500 with an error id that the log repeats beside the traceback. No answer carries
an absolute server path or a library's error text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.requests import ClientDisconnect

from realfake import __version__
from realfake.serve.limits import BodyLimit, ErrorIds, HeadAsGet, WatchedSend
from realfake.serve.metrics import ServiceMetrics
from realfake.serve.model import ModelSource
from realfake.serve.routers import examples, explain, meta, page, predict
from realfake.serve.service import Service
from realfake.serve.settings import ServeSettings
from realfake.serve.uploads import Answer

log = logging.getLogger("realfake.serve")

CLIENT_CLOSED = 499  # nginx's status for a client that left before the answer


def create_app(model: ModelSource, settings: ServeSettings | None = None) -> FastAPI:
    """The service of ``model``: a Scorer, a predictor, or a run / .ckpt / .onnx path.

    The model is opened (and its decision rule resolved) in the background once the app
    starts: /health answers meanwhile, and a model that fails to load, a threshold frozen with
    the other flip-TTA setting included, leaves the service unready with the reason in
    ``app.state.service.load_error``.
    """
    settings = settings or ServeSettings()
    service = Service(model, settings, ServiceMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from files the fastapi-offline
    # package ships, so the documentation works on a machine with no internet.
    app = FastAPIOffline(
        title="realfake",
        version=__version__,
        summary="Tells real photographs from AI-generated images; Grad-CAM shows the evidence.",
        lifespan=lifespan,
    )
    app.state.service = service
    routers = (page.router, meta.router, predict.router, explain.router, examples.router)
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    app.add_exception_handler(Answer, _whole_answer)
    app.add_exception_handler(ClientDisconnect, _client_left)

    # --- edges: innermost first ---------------------------------------------------------------
    endpoint_of = app.state.endpoint_of = _endpoint_names(app, routers)
    metrics = service.metrics
    app.add_middleware(HeadAsGet)
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
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["X-API-Key"],
            expose_headers=["X-Decision-Rule", "X-Threshold", "X-Prediction", "X-Probability"],
        )
    app.add_middleware(
        ErrorIds, on_error=lambda path: metrics.errors.labels(endpoint_of(path), "internal").inc()
    )
    app.add_middleware(RequestMetrics, metrics=metrics, endpoint_of=endpoint_of)
    return app


async def _whole_answer(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Answer)
    return JSONResponse(exc.answer.model_dump(exclude_none=True), status_code=exc.status)


async def _client_left(request: Request, exc: Exception) -> Response:
    """A client that closed its connection mid-upload: one log line, counted, no traceback."""
    service: Service = request.app.state.service
    path = request.url.path
    service.metrics.errors.labels(request.app.state.endpoint_of(path), "client_abort").inc()
    log.info("client left during %s %s before its upload was complete", request.method, path)
    return Response(status_code=CLIENT_CLOSED)


def _endpoint_names(app: FastAPI, routers: tuple[APIRouter, ...]) -> Callable[[str], str]:
    """A request path -> its metrics label: the route's path, /static, or 'other'."""
    endpoints = {route.path for route in app.routes if hasattr(route, "methods")}
    endpoints |= {route.path for router in routers for route in router.routes}

    def endpoint_of(path: str) -> str:
        if path in endpoints:
            return path
        return "/static" if path.startswith("/static/") else "other"

    return endpoint_of


class RequestMetrics:
    """Counts every request by endpoint and status and times it (pure ASGI, outermost)."""

    def __init__(self, app: Any, metrics: ServiceMetrics, endpoint_of: Callable[[str], str]):
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
            # A client that left is counted once, as kind="client_abort", where it was seen.
            if 400 <= status < 500 and status != CLIENT_CLOSED:
                self.metrics.errors.labels(endpoint, f"http_{status}").inc()
