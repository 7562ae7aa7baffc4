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
    """The decision on one uploaded file, or why the file was refused.

    The verdict fields are ``realfake predict``'s columns for the same file: ``pixel_verdict``
    is the pixels' own (the label, or UNSURE near the threshold or for an image unlike the
    training images), ``verdict`` and ``reason`` combine it with the file's provenance.
    """

    file: str = Field(description="the file name the client sent (echoed, never opened)")
    label: str | None = Field(None, description="the class the pixels decide (by the rule)")
    index: int | None = Field(None, description="its index in the model's classes")
    probabilities: dict[str, float] | None = Field(None, description="per class, summing to 1")
    threshold: float | None = Field(
        None, description="the threshold on P(positive class) used; null: arg-max"
    )
    verdict: str | None = Field(
        None,
        description="the answer: a class, or UNSURE; pixels and provenance combined",
    )
    reason: str | None = Field(None, description="why that verdict, in one sentence")
    pixel_verdict: str | None = Field(
        None, description="the pixels' own verdict: the label, or UNSURE (band, or unlike)"
    )
    evidence: list[str] | None = Field(
        None,
        description="what the file's metadata says of its origin, one line per marker (its "
        "absence proves nothing); null: not read (the classes are not FAKE/REAL)",
    )
    provenance: str | None = Field(
        None,
        description="the provenance rule that decided (signed-generated, declared-generated, "
        "trusted-capture, signed-capture), or 'pixels' when none did; null: not read",
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
    explain_unavailable: str | None = Field(
        None, description="why there is no Grad-CAM here, when there is none"
    )
    api_key_required: bool
    limits: Limits


class Example(BaseModel):
    """An image to try: one of the embedded CIFAKE test images (MIT), with its true class."""

    name: str
    url: str = Field(description="where the app serves it (GET)")
    label: str = Field(description="the class CIFAKE gives it: FAKE (Stable Diffusion) or REAL")
    credit: str


class CardModel(BaseModel):
    name: str = Field(description="the architecture, as the registry names it")
    parameters: int | None = Field(description="trainable weights; null: an exported graph")
    file: str = Field(description="the weights served, without the server's directories")
    file_mb: float | None
    backend: str
    input: str = Field(description="what the network sees of an image, in words")
    image_size: int
    classes: list[str]
    positive_class: str | None
    flip_tta: bool
    checkpoint_sha256: str


class CardData(BaseModel):
    train: list[str] = Field(description="the data sets trained on (names, never paths)")
    test: list[str] = Field(description="where the test images come from")
    images: dict[str, int] | None = Field(description="images per split, from the manifest")
    fingerprint: str | None


class SourceFigures(BaseModel):
    """Measured on the test images of one source (metrics.json ``per_source``)."""

    source: str
    images: int
    accuracy: float | None
    roc_auc: float | None
    recall: float | None = Field(description="share of its positive images caught")
    specificity: float | None = Field(description="share of its negative images passed")


class CardEvaluation(BaseModel):
    data: str = Field(description="the images measured on, in words")
    images: int | None
    accuracy: float | None
    accuracy_ci: list[float] | None = Field(description="bootstrap interval, when computed")
    ci_level: float | None
    roc_auc: float | None
    coverage: float | None = Field(description="share of the images answered (not UNSURE)")
    selective_accuracy: float | None = Field(description="accuracy of the answered images")
    decided_by: str = Field(description="the rule the figures were measured with")
    same_weights: bool = Field(description="whether they were measured on the weights served")
    per_source: list[SourceFigures] | None = Field(
        description="per source of the test images; null: this evaluation has none"
    )
    evaluated_at: str | None


class CardUnsure(BaseModel):
    band: str = Field(description="UNSURE near the threshold, in words")
    feature_distance: str = Field(description="UNSURE for images unlike the training images")
    size: str = Field(description="UNSURE for images far from the training images' size")


class ModelCard(BaseModel):
    """What the served model is, what it learnt from, how well it did, and what not to use it
    for: from the run's own records (config.yaml, manifest.json, metrics.json)."""

    model: CardModel
    run: str | None
    training_data: CardData | None
    evaluation: CardEvaluation | None
    decision_rule: DecisionRuleRecord
    rule_in_words: str
    unsure: CardUnsure
    limits: list[str]
    intended_use: list[str]
    not_for: list[str]
    missing: list[str] = Field(description="records the card lacks, and why")


class ErrorAnswer(BaseModel):
    detail: str
    results: list[ImageResult] | None = None
    error_id: str | None = None
