"""Shortcut audit: does the model read compression, object class or scale instead of content?

Three probes on the test images, with the threshold frozen on clean validation data:
  - re-encode EVERY image at one JPEG quality. Detectors have been shown to learn the format of
    their training data instead of generation traces ("Fake or JPEG? Revealing Common Biases in
    Generated Image Detection Datasets", Grommelt et al. 2024); CIFAKE's classes share quality-75
    JPEG, so a large change here means the model keys on compression details;
  - accuracy per CIFAR-10 class (from CIFAKE file names, ``N (k).jpg`` = class k, REAL and FAKE
    alike): a model that is good only on some objects learnt the objects;
  - accuracy at other input sizes. Every registered model ends in global pooling, so it accepts
    any size: the test images are resized (antialiased bilinear) and fed at that size directly,
    not resized back. Content survives a change of scale; pixel-level traces do not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from realfake.data.cifar10 import CIFAR10_CLASSES, cifar10_class
from realfake.data.perturbations import jpeg
from realfake.errors import DataError
from realfake.inference import Scorer, as_scorer
from realfake.inference.splits import eval_images

CHUNK = 2048  # images transformed at once


@dataclass
class JpegProbe:
    quality: int
    clean_accuracy: float
    accuracy: float  # after re-encoding every test image at ``quality``
    changed: float  # fraction of images whose predicted class changed


@dataclass
class ClassRow:
    cifar10_class: str
    label: str  # the true class (REAL / FAKE)
    n: int
    accuracy: float


@dataclass
class SizeRow:
    size: int
    accuracy: float
    changed: float  # predictions that differ from those at the model's own size
    note: str = ""


@dataclass
class ShortcutAudit:
    jpeg: list[JpegProbe]
    per_class: list[ClassRow]
    sizes: list[SizeRow]
    unparsed: int  # test images whose file names carry no CIFAR-10 class
    clean_accuracy: float
    threshold: float | None
    decision: str  # the rule that decided, in words
    data: str
    classes: list[str] = field(default_factory=list)


def per_class_accuracy(
    names: list[str], labels: np.ndarray, predicted: np.ndarray, classes: list[str]
) -> tuple[list[ClassRow], int]:
    """Accuracy per (CIFAR-10 class, true label) from CIFAKE file names; also the unparsed count."""
    hits: dict[tuple[str, int], list[bool]] = defaultdict(list)
    unparsed = 0
    for name, y, p in zip(names, labels.tolist(), predicted.tolist(), strict=True):
        try:
            cls = cifar10_class(name.rsplit("/", 1)[-1])
        except DataError:
            unparsed += 1
            continue
        hits[(cls, y)].append(y == p)
    rows = [
        ClassRow(cls, classes[y], len(hits[(cls, y)]), float(np.mean(hits[(cls, y)])))
        for cls in CIFAR10_CLASSES
        for y in range(len(classes))
        if hits.get((cls, y))
    ]
    return rows, unparsed


def audit_shortcuts(
    model: Scorer | str | Path,
    data: str | Path | None = None,
    *,
    split: str | None = None,
    jpeg_qualities: tuple[int, ...] = (95, 75, 50),
    sizes: tuple[int, ...] = (24, 48, 64),
) -> ShortcutAudit:
    """Run the three shortcut probes on the model's test images (or ``data``).

    Images, probabilities and the decision rule are those of ``realfake evaluate`` with the
    same scorer.
    """
    scorer = as_scorer(model)
    found = eval_images(scorer.predictor, data, split)
    images, labels = found.one_size("the shortcut audit"), found.split.labels.numpy()

    def predicted_after(
        transform: Callable[[torch.Tensor], torch.Tensor], resize: bool = True
    ) -> np.ndarray:
        parts = [np.zeros(0, np.int64)]
        for s in range(0, images.shape[0], CHUNK):
            probs = scorer.probabilities(transform(images[s : s + CHUNK]), resize=resize)
            parts.append(scorer.decide(probs))
        return np.concatenate(parts)

    clean = predicted_after(lambda x: x)
    clean_acc = float(np.mean(clean == labels)) if len(labels) else float("nan")

    probes = []
    for q in jpeg_qualities:
        out = predicted_after(lambda x, q=q: jpeg(x, q))
        probes.append(
            JpegProbe(q, clean_acc, float(np.mean(out == labels)), float(np.mean(out != clean)))
        )

    per_class, unparsed = per_class_accuracy(found.split.names, labels, clean, scorer.classes)

    size_rows = []
    for size in sizes:
        try:
            # Fed at the new size itself (resize=False): the models pool globally.
            out = predicted_after(
                lambda x, z=size: TF.resize(x, [z, z], antialias=True), resize=False
            )
        except RuntimeError as exc:  # a model whose head needs a fixed size
            size_rows.append(SizeRow(size, float("nan"), float("nan"), str(exc).splitlines()[0]))
            continue
        note = "the model's own size" if size == scorer.image_size else ""
        size_rows.append(
            SizeRow(size, float(np.mean(out == labels)), float(np.mean(out != clean)), note)
        )
    return ShortcutAudit(
        jpeg=probes,
        per_class=per_class,
        sizes=size_rows,
        unparsed=unparsed,
        clean_accuracy=clean_acc,
        threshold=scorer.rule.threshold,
        decision=scorer.describe_rule(),
        data=found.where,
        classes=scorer.classes,
    )
