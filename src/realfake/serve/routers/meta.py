"""Probes and descriptions: /health and /ready (open); /metadata, /model-card and /metrics (key
if set)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from realfake import __version__
from realfake.serve.deps import ERRORS, PROTECTED, ScorerDep, ServiceDep
from realfake.serve.model import checkpoint_label, source_label
from realfake.serve.schemas import Health, Limits, Metadata, ModelCard, Ready

router = APIRouter()


@router.get("/health", response_model=Health, summary="The process is alive")
async def health(service: ServiceDep) -> Health:
    scorer = service.scorer
    settings = service.settings
    return Health(
        status="ok",
        model_loaded=service.ready,
        device=settings.device if scorer is None else _device(scorer, settings.device),
        checkpoint=source_label(service.source) if scorer is None else checkpoint_label(scorer),
        error=service.load_error,
    )


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "not ready yet, or the load failed"}},
    summary="200 once the model is loaded and warmed up by one forward pass",
)
async def ready(service: ServiceDep) -> Any:
    if service.ready:
        return Ready(ready=True, detail="model loaded and warmed up")
    detail = service.load_error or "loading the model"
    return JSONResponse(Ready(ready=False, detail=detail).model_dump(), status_code=503)


@router.get("/metadata", response_model=Metadata, dependencies=PROTECTED, responses=ERRORS)
async def metadata(service: ServiceDep, scorer: ScorerDep) -> Metadata:
    settings = service.settings
    spec = scorer.spec
    assert service.rule_record is not None
    return Metadata(
        model=spec.model,
        classes=list(scorer.classes),
        image_size=scorer.image_size,
        resize=spec.resize,
        flip_tta=scorer.tta,
        positive_class=spec.positive_class,
        threshold=scorer.rule.threshold,
        rule=service.rule_record,
        backend=scorer.backend,
        device=_device(scorer, settings.device),
        checkpoint=checkpoint_label(scorer),
        checkpoint_sha256=scorer.sha256,
        version=__version__,
        explain=service.can_explain,
        explain_unavailable=service.explain_unavailable,
        api_key_required=settings.api_key is not None,
        limits=Limits(
            max_body_bytes=settings.max_body_bytes,
            max_files=settings.max_files,
            max_pixels=settings.max_pixels,
            max_batch=settings.max_batch,
            batch_wait_ms=settings.batch_wait_ms,
        ),
    )


@router.get(
    "/model-card",
    response_model=ModelCard,
    dependencies=PROTECTED,
    responses=ERRORS,
    summary="What the model is, what it learnt from, how well it did, and its limits",
)
async def model_card(service: ServiceDep, scorer: ScorerDep) -> ModelCard:
    assert service.card is not None  # built with the scorer, before the service is ready
    return service.card


@router.get("/metrics", dependencies=PROTECTED, summary="Prometheus metrics (text format)")
async def prometheus(service: ServiceDep) -> Response:
    metrics = service.metrics
    return Response(metrics.render(), media_type=metrics.content_type)


def _device(scorer: Any, default: str) -> str:
    return str(getattr(scorer.predictor, "device", default))
