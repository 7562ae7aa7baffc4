"""POST /predict (one or many images, field 'files') and /predict/ (the write-up's contract)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from realfake.serve.deps import ERRORS, PROTECTED, ScorerDep, ServiceDep, rule_headers
from realfake.serve.schemas import LegacyPrediction, PredictResponse
from realfake.serve.uploads import classify_uploads, multipart_body

router = APIRouter(dependencies=PROTECTED, responses=ERRORS)


@router.post(
    "/predict",
    response_model=PredictResponse,
    openapi_extra=multipart_body("files", many=True),
    summary="Classify one or many images (multipart field 'files', repeated)",
)
async def predict(request: Request, service: ServiceDep, scorer: ScorerDep) -> PredictResponse:
    most = service.settings.max_files
    results = await classify_uploads(request, service, "files", most, "/predict")
    assert service.rule_record is not None
    return PredictResponse(
        results=results,
        model=scorer.spec.model,
        positive_class=scorer.spec.positive_class,
        rule=service.rule_record,
    )


@router.post(
    "/predict/",
    response_model=LegacyPrediction,
    openapi_extra=multipart_body("data", many=False),
    summary="The MLOps write-up's contract: one image in field 'data' (rule in the headers)",
)
async def predict_legacy(
    request: Request, response: Response, service: ServiceDep, scorer: ScorerDep
) -> LegacyPrediction:
    (result,) = await classify_uploads(request, service, "data", 1, "/predict/")
    response.headers.update(rule_headers(service))
    return LegacyPrediction(prediction=result.label, probs=result.probabilities)
