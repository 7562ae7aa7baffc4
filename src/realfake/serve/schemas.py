"""The JSON the service answers with (these models are the OpenAPI schemas at /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from realfake.inference import Scorer
from realfake.serve.model import public_text


class DecisionRuleRecord(BaseModel):
    """Which rule turned the probabilities into the label, and for which weights."""

    rule: Literal["argmax", "threshold"]
    threshold: float | None = Field(description="on P(positive_class); null: arg-max")
    positive_class: str | None
    origin: str = Field(description="argmax | frozen (chosen once for these weights) | given")
    reason: str = Field(description="why this rule, for people")
    text: str = Field(description="the rule in one line, e.g. 'P(FAKE) >= 0.4213 (frozen: ...)'")
    tta: bool = Field(description="whether the probabilities average the mirror image's")
    checkpoint_sha256: str

    @classmethod
    def of(cls, scorer: Scorer) -> DecisionRuleRecord:
        """The scorer's rule record, its text fields without the server's directories."""
        record: dict[str, Any] = scorer.rule_record()
        for key in ("reason", "text"):
            record[key] = public_text(record[key])
        return cls(**record)


class ImageResult(BaseModel):
    """The decision on one uploaded file, or why the file was refused."""

    file: str = Field(description="the file name the client sent (echoed, never opened)")
    label: str | None = Field(None, description="the predicted class")
    index: int | None = Field(None, description="its index in the model's classes")
    probabilities: dict[str, float] | None = Field(None, description="per class, summing to 1")
    threshold: float | None = Field(
        None, description="the threshold on P(positive class) used; null: arg-max"
    )
    error: str | None = Field(None, description="why the file was refused (then no label)")
    status: int | None = Field(None, description="the HTTP status this file alone would get")


class PredictResponse(BaseModel):
    results: list[ImageResult]
    model: str
    positive_class: str | None
    rule: DecisionRuleRecord = Field(description="the rule that decided every label here")


class LegacyPrediction(BaseModel):
    """The MLOps write-up's answer: its clients read exactly these two keys.

    The rule that decided it travels in the X-Decision-Rule and X-Threshold headers.
    """

    prediction: str
    probs: dict[str, float]


class Health(BaseModel):
    status: str = Field(description="'ok' while the process answers")
    model_loaded: bool
    device: str
    checkpoint: str
    error: str | None = Field(None, description="why the model failed to load, if it did")


class Ready(BaseModel):
    ready: bool
    detail: str


class Limits(BaseModel):
    max_body_bytes: int
    max_files: int
    max_pixels: int
    max_batch: int
    batch_wait_ms: float


class Metadata(BaseModel):
    model: str
    classes: list[str]
    image_size: int
    resize: str
    flip_tta: bool = Field(description="the flip TTA the service scores with")
    positive_class: str | None
    threshold: float | None = Field(description="the decision threshold; null: arg-max")
    rule: DecisionRuleRecord
    backend: str
    device: str
    checkpoint: str
    checkpoint_sha256: str
    version: str
    explain: bool = Field(description="whether /explain is available (torch backend)")
    api_key_required: bool
    limits: Limits


class ErrorAnswer(BaseModel):
    detail: str
    results: list[ImageResult] | None = None
    error_id: str | None = None
