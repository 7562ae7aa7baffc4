"""The served model: its Scorer (predictor, TTA, decision rule) and what the service says of it."""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn

from realfake.inference import BasePredictor, Scorer
from realfake.serve.settings import ServeSettings

# An absolute path inside a message: its directories are the server's business, its last
# component (the run, the file) is what the client can recognise.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:/[^\s/:;,'\"()\[\]]+)+/([^\s/:;,'\"()\[\]]*)")

ModelSource = Scorer | BasePredictor | str | Path


def open_scorer(model: ModelSource, settings: ServeSettings) -> Scorer:
    """The scorer the service decides with: the run's own TTA and decision rule.

    A threshold frozen with the other flip-TTA setting is a ConfigError (``Scorer.build``'s
    sentence, the one ``realfake predict`` gives), never a silent fall-back to the arg-max.
    """
    if isinstance(model, Scorer):
        return model
    if isinstance(model, (str, Path)):
        return Scorer.open(
            model,
            backend=settings.backend,
            device=settings.device,
            threads=settings.model_threads(),
            batch_size=settings.max_batch,
        )
    return Scorer.build(model, batch_size=settings.max_batch)


def torch_model(scorer: Scorer) -> nn.Module | None:
    """The scorer's torch network (Grad-CAM needs one), or None (ONNX backend)."""
    model = getattr(scorer.predictor, "model", None)
    return model if isinstance(model, nn.Module) else None


def checkpoint_label(scorer: Scorer) -> str:
    """The served file named without the server's directories: RUN/checkpoints/best.ckpt."""
    path = scorer.checkpoint
    if path is None:
        return ""
    path = Path(path)
    run = scorer.run
    if run is not None:
        try:
            return f"{Path(run.path).name}/{path.relative_to(run.path)}"
        except ValueError:
            pass
    return path.name


def source_label(model: ModelSource) -> str:
    """What /health names before the model is loaded: the file or run name, no directories."""
    if isinstance(model, (str, Path)):
        return Path(model).name
    return checkpoint_label(model) if isinstance(model, Scorer) else ""


def public_text(text: str) -> str:
    """``text`` for a client: one line, absolute paths cut to their last component."""
    return _ABSOLUTE_PATH.sub(r"\1", " ".join(text.split()))
