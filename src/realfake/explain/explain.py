"""Grad-CAM overlays for a folder (or archive, or file) of images and a checkpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from realfake.atomic import check_writable_dir, replacing
from realfake.data.loader import load_images
from realfake.errors import DataError
from realfake.explain.gradcam import gradcam, tiles_unexplained
from realfake.explain.overlay import overlay
from realfake.inference import Scorer, as_scorer


@dataclass
class Explained:
    name: str  # the image's path inside the source
    predicted: str
    probability: float  # of the predicted class
    target: str  # the class the map explains
    path: Path  # the overlay written
    renamed: bool = False  # its natural name was taken by another image's overlay


def _safe(text: str) -> str:
    return re.sub(r"[^\w.()+-]+", "_", text).strip("_") or "image"


def _distinct(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``NAME__2.png``, ``NAME__3.png``... if an earlier overlay took it."""
    candidate, k = path, 2
    while candidate in taken:
        candidate, k = path.with_name(f"{path.stem}__{k}{path.suffix}"), k + 1
    taken.add(candidate)
    return candidate


def explain(
    model: Scorer | str | Path,
    images: str | Path,
    out: str | Path,
    *,
    target: str | None = None,
    size: int = 256,
    limit: int | None = None,
) -> list[Explained]:
    """Write ``out/<path of each image>_<class>_<probability>.png`` overlays; return what was done.

    ``target`` explains one class for every image (default: each image's decided class).
    Decisions are the scorer's (its TTA and rule, as every other command decides); the map
    explains the network's score for the class on the image.
    """
    scorer = as_scorer(model)
    predictor = scorer.torch_predictor("Grad-CAM needs the network's gradients")
    why = tiles_unexplained(predictor.spec)
    if why is not None:
        # Its decisions come from native tiles; a map of the resized image would explain
        # another decision than the one predict and evaluate report.
        raise DataError(f"{why}: use `realfake predict` for its decisions")
    batch_size = scorer.batch_size
    if target is not None and target not in predictor.classes:
        raise DataError(f"target class '{target}' is not one of {predictor.classes}")
    data = load_images(images, predictor.image_size, predictor.spec.resize, labelled=False)
    split = next(iter(data.splits.values()))
    n = len(split) if limit is None else min(limit, len(split))
    if n == 0:
        raise DataError(f"found no images in {images}")
    out = check_writable_dir(out, "--out")
    done: list[Explained] = []
    taken: set[Path] = set()  # images whose safe names collide keep distinct overlays
    for start in range(0, n, batch_size):
        batch = split.images[start : min(n, start + batch_size)]
        probs = scorer.probabilities(batch)
        predicted = torch.from_numpy(scorer.decide(probs))
        wanted = (
            predicted
            if target is None
            else torch.full_like(predicted, predictor.classes.index(target))
        )
        cams = gradcam(predictor.model, predictor.normalize(batch), wanted, size=(size, size))
        for i in range(batch.shape[0]):
            name = split.names[start + i]
            cls = predictor.classes[int(predicted[i])]
            p = float(probs[i, int(predicted[i])])
            explained = predictor.classes[int(wanted[i])]
            caption = f"{name}: {cls} {p:.2f}" + (
                "" if explained == cls else f" (map: {explained})"
            )
            stem = Path(name)
            natural = out / stem.parent / f"{_safe(stem.stem)}_{cls}_{p:.2f}.png"
            path = _distinct(natural, taken)
            with replacing(path) as tmp:
                overlay(batch[i], cams[i], size, caption=caption).save(tmp, format="PNG")
            done.append(Explained(name, cls, p, explained, path, renamed=path != natural))
    return done
