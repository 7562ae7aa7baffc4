"""The tile rule: how an image at its own size becomes tiles of the network's size, and how the
tiles' probabilities become the image's.

One definition for prediction (``BasePredictor.tiles``, every backend, the service) and for
native training's validation and test steps, so that a run's figures are its predictor's.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

from realfake.data.decode import central_region, to_tile_size

Probs = TypeVar("Probs", np.ndarray, torch.Tensor)


def tile_grid(h: int, w: int, size: int, max_tiles: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the tiles of an h×w image (h, w >= size), row by row.

    Tiles of size×size are spread evenly from corner to corner, covering the image when
    ``max_tiles`` allows, else on the largest grid of that many with the image's proportions.
    """
    rows, cols = math.ceil(h / size), math.ceil(w / size)
    if rows * cols > max_tiles:
        # The largest grid within the budget that keeps the image's proportions.
        rows = max(1, min(rows, math.floor(math.sqrt(max_tiles * h / w))))
        cols = max(1, min(cols, max_tiles // rows))
    ys = np.linspace(0, h - size, rows).round().astype(int).tolist()
    xs = np.linspace(0, w - size, cols).round().astype(int).tolist()
    return [(y, x) for y in ys for x in xs]


def image_tiles(
    image: torch.Tensor, size: int, max_tiles: int, resize: str, max_side: int = 0
) -> torch.Tensor:
    """The tiles of one native uint8 image 3×H×W (K×3×size×size, K <= max_tiles).

    An image smaller than ``size`` on a side cannot be tiled: it is brought to size×size by
    ``resize`` (``to_tile_size``, the one place pixels are resampled in this mode). With
    ``max_side`` (a run trained at native resolution: its spec's native_max_side) the tiles
    cover the image's central region of at most max_side×max_side pixels, the region its
    training images kept (``central_region``).
    """
    h, w = image.shape[-2:]
    if max_side and h >= size and w >= size:
        image = central_region(image, max_side)
        h, w = image.shape[-2:]
    if h < size or w < size:
        pixels = to_tile_size(image.cpu().numpy(), size, resize)
        return torch.from_numpy(pixels.copy()).to(image.device)[None]
    corners = tile_grid(h, w, size, max_tiles)
    return torch.stack([image[:, y : y + size, x : x + size] for y, x in corners])


def aggregate_tiles(probs: Probs, rule: str, positive: int | None) -> Probs:
    """An image's probabilities (C) from its tiles' (K×C): their mean, or with ``rule="max"``
    (two classes) the probabilities of its most positive tile."""
    if rule == "max" and positive is not None:
        return probs[int(probs[:, positive].argmax())]
    return probs.mean(0)
