"""The model card: what the served model is, what it learnt from, how well it did, its limits.

Built once, when the model loads, from the run's own records: ``config.yaml`` (the data sets,
named by their file or folder name, never the server's directories), ``manifest.json`` (images
per split), ``metrics.json`` (the test figures, per source where the evaluation has them), and
the scorer itself (the rule and the UNSURE set-up, in the words of ``realfake predict``'s
summary page). A record that is missing or unreadable leaves its section empty and says why in
``missing``: the card never invents a figure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, TypeVar

from realfake.inference import Scorer
from realfake.inference.summary import band_in_words, ood_in_words, rule_in_words
from realfake.serve.model import checkpoint_label, public_text, torch_model
from realfake.serve.schemas import (
    CardData,
    CardEvaluation,
    CardModel,
    CardUnsure,
    DecisionRuleRecord,
    ModelCard,
    SourceFigures,
)

T = TypeVar("T")

EMBEDDED = "cifake-mini (the CIFAKE mini set shipped with realfake)"
INTENDED_USE = [
    "research on telling AI-generated images from photographs",
    "triage: choosing which images a person should look at more closely",
]
NOT_FOR = [
    "proof that an image is, or is not, AI-generated: a score is a model's guess",
    "decisions about people (moderation, legal or newsroom verdicts) without a person "
    "weighing other evidence",
]


def model_card(scorer: Scorer, rule: DecisionRuleRecord) -> ModelCard:
    """The card of the model ``scorer`` serves, from its run's records where it has them."""
    missing: list[str] = []
    run = scorer.run
    config = manifest = metrics = None
    if run is None:
        missing.append(
            "no run directory: an exported graph or a bare checkpoint carries no training "
            "records; serve the run directory for its data and test figures"
        )
    else:
        config = _read(run.config, missing, _yaml)
        manifest = _read(run.manifest, missing, json.loads)
        metrics = _read(run.evaluation, missing, json.loads)
        if not run.evaluation.is_file():
            missing.append("metrics.json: the run was not evaluated (realfake evaluate RUN)")
    data = _guarded("config.yaml or manifest.json", missing, _training_data, config, manifest)
    evaluation = _guarded("metrics.json", missing, _evaluation, metrics, scorer, missing)
    return ModelCard(
        model=_model(scorer),
        run=None if run is None else run.name,
        training_data=data,
        evaluation=evaluation,
        decision_rule=rule,
        rule_in_words=rule_in_words(scorer),
        unsure=CardUnsure(
            band=band_in_words(scorer),
            feature_distance=ood_in_words(scorer),
            size=_size_in_words(scorer),
        ),
        limits=_limits(scorer, data, evaluation),
        intended_use=list(INTENDED_USE),
        not_for=list(NOT_FOR),
        missing=missing,
    )


def _guarded(what: str, missing: list[str], build: Callable[..., T], *args: Any) -> T | None:
    """``build(*args)``, or None with why in ``missing`` when a record has an unexpected shape
    (a hand-edited file must not keep the model from being served)."""
    try:
        return build(*args)
    except (TypeError, ValueError, AttributeError) as exc:  # pydantic's ValidationError too
        missing.append(f"{what} has an unexpected shape ({type(exc).__name__}); left out")
        return None


def _read(path: Path, missing: list[str], parse: Callable[[str], Any]) -> dict[str, Any] | None:
    """The object in ``path``, or None with why in ``missing`` (absent files are not noted)."""
    if not path.is_file():
        return None
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # yaml.YAMLError and JSONDecodeError are ValueErrors
        missing.append(f"{path.name} could not be read ({type(exc).__name__})")
        return None
    if not isinstance(value, dict):
        missing.append(f"{path.name} is not a mapping")
        return None
    return value


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def _model(scorer: Scorer) -> CardModel:
    spec = scorer.spec
    network = torch_model(scorer)
    checkpoint = scorer.checkpoint
    size = None
    if checkpoint is not None and checkpoint.is_file():
        size = round(checkpoint.stat().st_size / 1e6, 2)
    return CardModel(
        name=spec.model,
        parameters=None if network is None else sum(p.numel() for p in network.parameters()),
        file=checkpoint_label(scorer),
        file_mb=size,
        backend=scorer.backend,
        input=_input_in_words(scorer),
        image_size=spec.image_size,
        classes=list(scorer.classes),
        positive_class=spec.positive_class,
        flip_tta=scorer.tta,
        checkpoint_sha256=scorer.sha256,
    )


def _input_in_words(scorer: Scorer) -> str:
    spec = scorer.spec
    s = spec.image_size
    squash = "stretched" if spec.resize == "stretch" else "centre-cropped to a square and resized"
    if spec.tiles:
        combined = "averaged" if spec.tile_aggregate == "mean" else "the most positive one kept"
        return (
            f"up to {spec.tiles} tiles of {s}×{s} pixels cut from the image at its own "
            f"resolution, never resized (an image smaller than a tile is {squash}); the tiles' "
            f"probabilities {combined}"
        )
    return f"the whole image brought to {s}×{s} pixels ({squash})"


def _size_in_words(scorer: Scorer) -> str:
    sizes = scorer.size_range
    if sizes is None:
        return "not checked: no training image sizes were recorded with this model's rule"
    return (
        f"an image whose size is far from the training images' ({sizes.describe()}) is UNSURE: "
        "brought to the model's input it is not what the model learnt from"
    )


def _name(source: Any) -> str | None:
    """A data set's name as a client may see it: its file or folder name, no directories."""
    if not source:
        return None
    return PurePath(str(source)).name or None


def _training_data(
    config: dict[str, Any] | None, manifest: dict[str, Any] | None
) -> CardData | None:
    if config is None:
        return None
    data = config.get("data") or {}
    if not isinstance(data, dict):
        data = {}
    train = [_name(data.get("source")) or EMBEDDED]
    test = [_name(data.get("test_source")) or "held out from the training data (its test split)"]
    extras = data.get("extra_sources") or {}
    if isinstance(extras, dict):
        for key, extra in extras.items():
            extra = extra if isinstance(extra, dict) else {}
            train.append(_name(extra.get("source")) or str(key))
            if extra.get("test_source"):
                test.append(str(_name(extra.get("test_source"))))
    record = (manifest or {}).get("data") or {}
    sizes = record.get("sizes") if isinstance(record, dict) else None
    images = (
        {str(k): int(v) for k, v in sizes.items() if isinstance(v, (int, float))}
        if isinstance(sizes, dict)
        else None
    )
    fingerprint = record.get("fingerprint") if isinstance(record, dict) else None
    return CardData(train=train, test=test, images=images or None, fingerprint=fingerprint)


def _number(value: Any) -> float | None:
    """A figure as JSON may hold it: a finite number, else None (NaN is written as null)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _evaluation(
    record: dict[str, Any] | None, scorer: Scorer, missing: list[str]
) -> CardEvaluation | None:
    if record is None:
        return None
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        missing.append("metrics.json holds no metrics")
        return None
    ci = metrics.get("ci") if isinstance(metrics.get("ci"), dict) else None
    interval = ci.get("accuracy") if ci else None
    verdicts = metrics.get("verdicts") if isinstance(metrics.get("verdicts"), dict) else {}
    decision = record.get("decision") if isinstance(record.get("decision"), dict) else {}
    per_source = metrics.get("per_source")
    if not isinstance(per_source, dict):
        per_source = None
        missing.append("metrics.json has no per-source figures (evaluated before they existed)")
    same = record.get("checkpoint_sha256") == scorer.sha256
    if not same:
        missing.append("metrics.json was measured on other weights than the ones served")
    return CardEvaluation(
        data=public_text(str(record.get("data") or record.get("split") or "unknown")),
        images=record.get("images") if isinstance(record.get("images"), int) else None,
        accuracy=_number(metrics.get("accuracy")),
        accuracy_ci=[float(x) for x in interval] if isinstance(interval, list) else None,
        ci_level=_number(ci.get("level")) if ci else None,
        roc_auc=_number(metrics.get("roc_auc")),
        coverage=_number(verdicts.get("coverage")),
        selective_accuracy=_number(verdicts.get("selective_accuracy")),
        decided_by=public_text(str(decision.get("text") or "not recorded")),
        same_weights=same,
        per_source=None
        if per_source is None
        else [
            SourceFigures(
                source=str(name),
                images=int(row.get("n") or 0),
                accuracy=_number(row.get("accuracy")),
                roc_auc=_number(row.get("roc_auc")),
                recall=_number(row.get("recall")),
                specificity=_number(row.get("specificity")),
            )
            for name, row in per_source.items()
            if isinstance(row, dict)
        ],
        evaluated_at=record.get("evaluated_at"),
    )


def _limits(scorer: Scorer, data: CardData | None, evaluation: CardEvaluation | None) -> list[str]:
    """What the figures do not promise, for this model."""
    s = scorer.spec.image_size
    learnt = f"{s}×{s}-pixel images" + (f" of {', '.join(data.train)}" if data else "")
    out = [
        f"It learnt from {learnt}. On images from other generators, and on real photos at their "
        "own sizes, it can be near chance: its accuracy on its own test images says little "
        "about images unlike them.",
    ]
    if scorer.size_range is not None:
        out.append(
            "UNSURE marks images far from the training images' size "
            f"({scorer.size_range.describe()}): for those its probabilities say nothing."
        )
    if scorer.ood is not None:
        out.append(
            "UNSURE marks images unlike its training images (their features lie farther from "
            f"the training images' than {scorer.ood.quantile:.0%} of validation images do): "
            "for those its probabilities say nothing."
        )
    else:
        out.append(
            "Nothing here checks whether an image is like its training images "
            f"({scorer.ood_why}): an unfamiliar image still gets a confident-looking answer."
        )
    if evaluation is not None and evaluation.images is not None and evaluation.images < 1000:
        out.append(
            f"The test figures come from {evaluation.images} images: a small sample, "
            "uncertain by several percentage points."
        )
    out.append(
        "Grad-CAM shows where in the image the network found evidence for its answer, not why, "
        "and is no proof."
    )
    if set(scorer.classes) == {"FAKE", "REAL"}:
        out.append(
            "File metadata: a declared or signed AI origin decides FAKE; an unsigned declaration "
            "can be forged, and no metadata proves nothing (most images carry none, and it is "
            "easily stripped)."
        )
    return out
