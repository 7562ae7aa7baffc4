"""Class probabilities of many images in batches, with a progress bar on a terminal."""

from __future__ import annotations

import numpy as np
import torch

from realfake.inference import Predictor


def probabilities(
    predictor: Predictor,
    images: torch.Tensor,
    batch_size: int = 256,
    tta: bool = False,
    progress: bool = False,
    label: str = "predicting",
) -> np.ndarray:
    """N×C probabilities of uint8 images at the model's size (float64 for the metrics)."""
    n = images.shape[0]
    if not progress or n <= batch_size:
        return predictor.predict_proba(images, batch_size, flip_tta=tta).double().numpy()
    from rich.progress import Progress

    parts = []
    # transient: the bar disappears once done, leaving only the results on screen.
    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=n)
        for start in range(0, n, batch_size):
            chunk = images[start : start + batch_size]
            parts.append(predictor.predict_proba(chunk, batch_size, flip_tta=tta))
            bar.advance(task, len(chunk))
    return torch.cat(parts).double().numpy()
