"""An attacked copy of a data set: every image attacked against one checkpoint, same layout.

``realfake data perturb SRC DST --perturbation pgd:4 --checkpoint RUN`` (the scenario of a folder
of adversarially perturbed images handed to a detector). Each image is decoded and resized as the
predictor prepares it (the attack works on what the network sees, so the copy holds images at the
model's input size), attacked white-box against the checkpoint's own function (its flip TTA
unless told otherwise) and written as lossless PNG at the same relative path (``.png``, name
clashes resolved as for any perturbed copy: ``realfake.data.perturbed_copy``).

The attack lowers the probability of each image's class: the class its folder (or manifest)
gives, mapped onto the checkpoint's classes by name; in an unlabelled source, the class the
model itself gives the image (an attack on its own prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from realfake.attacks.linf import Attack, parse_attack
from realfake.attacks.whitebox import attack_images, predicted_labels
from realfake.data.decode import decode_image
from realfake.data.layout import UNLABELLED, impose_classes, resolve_layout
from realfake.data.perturbed_copy import PerturbedCopy, transform_source
from realfake.data.sources import open_source
from realfake.errors import DataError
from realfake.inference import Scorer


@dataclass
class AttackedCopy(PerturbedCopy):
    attack: str = ""  # the attack in words, steps and step size included
    labels: str = ""  # where the attacked classes came from
    changed: int = 0  # written images whose arg-max class differs from the clean image's


def source_labels(source: str | Path, classes: list[str]) -> dict[str, int] | None:
    """Class index (in ``classes``) of every image of a labelled source, by its name in the
    source's listing; None for an unlabelled source."""
    src = open_source(source)
    try:
        layout = resolve_layout(src, None)
    except DataError as exc:
        raise DataError(f"an attack needs each image's class or none at all: {exc}") from None
    if layout.kind == UNLABELLED:
        return None
    index = impose_classes(layout.classes, classes, f"{source} (attacked against the checkpoint)")
    by_ref = {id(entry.ref): index[label] for items in layout.splits.values()
              for entry, label in items}  # fmt: skip
    return {e.name: by_ref[id(e.ref)] for e in src.listing().images if id(e.ref) in by_ref}


def attack_source(
    source: str | Path,
    destination: str | Path,
    attack: Attack | str,
    scorer: Scorer,
    *,
    seed: int = 0,
) -> AttackedCopy:
    """Write a copy of ``source`` under ``destination`` with every image attacked."""
    attack = parse_attack(attack) if isinstance(attack, str) else attack
    labels = source_labels(source, scorer.classes)
    size, resize = scorer.spec.image_size, scorer.spec.resize
    changed = 0

    def decode(data: bytes) -> np.ndarray:
        return decode_image(data, size, resize)[0]  # as Predictor.prepare decodes files

    def apply(batch: torch.Tensor, names: list[str], seed: int) -> torch.Tensor:
        nonlocal changed
        clean = predicted_labels(scorer, batch)
        target = clean if labels is None else torch.tensor([labels[n] for n in names])
        out = attack_images(scorer, batch, target, attack, seed=seed)
        after = predicted_labels(scorer, out)
        changed += int((after != clean).sum())
        return out

    copy = transform_source(source, destination, attack.name, apply, decode=decode, seed=seed)
    flip = "with" if scorer.tta else "without"
    return AttackedCopy(
        **vars(copy),
        attack=f"{attack.describe()}; white-box on {scorer.checkpoint} {flip} flip TTA",
        labels="the model's own predictions (unlabelled source)"
        if labels is None
        else "the source's classes",
        changed=changed,
    )
