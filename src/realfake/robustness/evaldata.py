"""The images a checkpoint is audited on and its frozen threshold, as ``realfake evaluate``
finds them: the run's test split (or any labelled source) and the run's clean validation split."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from realfake.data.loader import ImageSplit
from realfake.evaluate.evaluation import eval_images, frozen_threshold
from realfake.evaluate.metrics import positive_class
from realfake.inference import Predictor

log = logging.getLogger(__name__)


@dataclass
class EvalData:
    test: ImageSplit
    where: str  # what the test images are, for reports
    threshold: float | None  # on P(positive); None for multi-class
    threshold_from: str  # where the threshold came from, for reports
    positive: int  # index of the positive class (binary; 1 otherwise, unused)


def probabilities(predictor: Predictor, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """N×C class probabilities of uint8 images at the model's size."""
    return predictor.predict_proba(images, batch_size=batch_size).numpy()


def load_eval_data(
    predictor: Predictor,
    data: str | Path | None = None,
    split: str | None = None,
    batch_size: int = 256,
) -> EvalData:
    """Test images (``data`` or the run's test split) and the threshold frozen on clean val."""
    # The same images and the same frozen threshold as `realfake evaluate` would use.
    images, dm, why = eval_images(predictor, data, split)
    threshold, threshold_from = frozen_threshold(predictor, dm, why, "accuracy", batch_size, False)
    binary = len(predictor.classes) == 2
    positive = positive_class(predictor.classes) if binary else 1
    return EvalData(images.split, images.where, threshold, threshold_from, positive)
