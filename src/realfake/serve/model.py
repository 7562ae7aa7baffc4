"""The served model: a Predictor of either backend, its decision threshold and what it reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from realfake.errors import RealfakeError


def load_served_predictor(
    ref: str | Path, backend: str = "auto", device: str = "cpu", threads: int | None = None
) -> Any:
    """A predictor of a run directory, checkpoint or ONNX file on the backend asked for.

    ``threads``: the model's intra-op threads (ONNX Runtime's session; the server process sets
    torch's own once, at start).
    """
    from realfake.inference import load_predictor

    return load_predictor(ref, backend=backend, device=device, threads=threads)


def backend_name(predictor: Any) -> str:
    """'onnx' or 'torch', as the predictor says or as its class suggests."""
    name = getattr(predictor, "backend", None)
    if isinstance(name, str):
        return name
    return "onnx" if "onnx" in type(predictor).__name__.lower() else "torch"


def torch_model(predictor: Any) -> nn.Module | None:
    """The predictor's torch network (Grad-CAM needs one), or None (ONNX backend)."""
    model = getattr(predictor, "model", None)
    return model if isinstance(model, nn.Module) else None


def served_threshold(predictor: Any) -> float | None:
    """The run's frozen threshold when it fits the TTA the service uses, else None (arg-max)."""
    if predictor.positive is None or predictor.spec.threshold is None:
        return None
    try:
        return predictor.frozen_threshold(None)
    except RealfakeError:
        return None  # chosen with the other TTA setting: arg-max is the honest decision


@dataclass(frozen=True)
class Decision:
    """The answer for one image."""

    label: str
    index: int
    probabilities: dict[str, float]
    threshold: float | None


def decisions(predictor: Any, probs: np.ndarray, threshold: float | None) -> list[Decision]:
    """One Decision per row of probabilities, by the predictor's own rule."""
    chosen = predictor.decide(probs, threshold)
    classes = list(predictor.classes)
    return [
        Decision(
            classes[k], int(k), {c: float(p) for c, p in zip(classes, row, strict=True)}, threshold
        )
        for k, row in zip(chosen.tolist(), probs, strict=True)
    ]


def checkpoint_label(predictor: Any) -> str:
    """The served file named without the server's directories: RUN/checkpoints/best.ckpt."""
    path = getattr(predictor, "checkpoint", None)
    if path is None:
        return ""
    path = Path(path)
    run = getattr(predictor, "run", None)
    if run is not None:
        try:
            return f"{Path(run.path).name}/{path.relative_to(run.path)}"
        except ValueError:
            pass
    return path.name
