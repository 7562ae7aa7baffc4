"""POST /explain: the Grad-CAM overlay (PNG) of one image, the decision in the headers."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from realfake.serve.deps import ERRORS, PROTECTED, ScorerDep, ServiceDep, rule_headers
from realfake.serve.uploads import multipart_body, prepare_one, read_uploads

router = APIRouter(dependencies=PROTECTED)


@router.post(
    "/explain",
    responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "the overlay"}},
    response_class=Response,
    openapi_extra=multipart_body("file", many=False),
    summary="Grad-CAM overlay (PNG) of one image in field 'file'",
)
async def explain(
    request: Request,
    service: ServiceDep,
    scorer: ScorerDep,
    target: str | None = Query(None, description="class to explain (default: the label)"),
) -> Response:
    unavailable = service.explain_unavailable
    if unavailable is not None:
        raise HTTPException(501, f"no Grad-CAM here: {unavailable}")
    if target is not None and target not in scorer.classes:
        raise HTTPException(422, f"target {target!r} is not one of {scorer.classes}")
    ((name, data),) = await read_uploads(request, service, "file", 1)
    image = await prepare_one(service, name, data, "/explain")
    done = await service.explain(image, target)
    d = done.decision
    headers = {
        "X-Prediction": d.label,
        "X-Probability": f"{d.probabilities[d.label]:.6f}",
        "X-Explained-Class": done.target,
        **rule_headers(service),
    }
    return Response(done.png, media_type="image/png", headers=headers)
