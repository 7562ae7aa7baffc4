"""Deterministic, stratified carving of val/test splits and removal of leaked duplicates."""

from __future__ import annotations

import numpy as np

from realfake.data.loader import ImageSplit

# Separate random streams, so that carving a test split never changes which images go to val.
VAL_STREAM = 0
TEST_STREAM = 1


def carve_count(n: int, fraction: float) -> int:
    """How many of a class's ``n`` images a fraction takes: at least 1, never all of them."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(fraction * n)))


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, stream: int = VAL_STREAM
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved) row indices, each ascending: ``fraction`` of every class, at random.

    Each class is shuffled by its own generator seeded with (seed, stream, class), so a class's
    split depends only on its own images and the seed.
    """
    kept, carved = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        k = carve_count(len(rows), fraction)
        rng = np.random.default_rng([seed % 2**63, stream, int(label) % 2**63])
        order = rng.permutation(len(rows))
        carved.append(rows[order[:k]])
        kept.append(rows[order[k:]])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(carved))


def split_off(
    split: ImageSplit, fraction: float, seed: int, stream: int
) -> tuple[ImageSplit, ImageSplit]:
    """(rest, carved) ImageSplits of a labelled split."""
    kept, carved = stratified_split(split.labels.numpy(), fraction, seed, stream)
    return split.subset(kept), split.subset(carved)


def duplicates_of(split: ImageSplit, others: list[ImageSplit]) -> np.ndarray:
    """Boolean mask of the images of ``split`` whose file bytes also occur in ``others``."""
    if split.md5 is None:
        return np.zeros(len(split), bool)
    seen = {row.tobytes() for other in others if other.md5 is not None for row in other.md5}
    return np.array([row.tobytes() in seen for row in split.md5], bool)
