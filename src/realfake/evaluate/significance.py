"""Paired tests between two classifiers scored on the same test images.

Both take per-image scores in the same image order: the paired bootstrap takes correctness in
[0, 1] (e.g. averaged over seeds), McNemar's test takes the 0/1 correctness of two single runs.

- Paired bootstrap (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13 for the
  percentile interval, ch. 15-16 for significance levels): the test images are resampled with
  replacement, the same resample for both classifiers, so the interval of the difference in
  accuracy keeps the pairing (the images both get right or both get wrong cancel).
- McNemar's test (McNemar 1947, Psychometrika 12(2)), exact form: under "equally accurate" the
  images exactly one classifier gets right are a fair coin's tosses, so the two-sided p-value is
  the binomial tail of the smaller count (Dietterich 1998 recommends it for comparing two
  classifiers on one test set).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Resamples × images int64 indices per chunk: ~8M cells keep memory near 64 MB for any test set.
_CELLS_PER_CHUNK = 8_000_000


@dataclass(frozen=True)
class PairedBootstrap:
    """Mean difference a − b, its percentile interval and two-sided p-value."""

    delta: float
    low: float
    high: float
    p: float
    level: float
    resamples: int
    seed: int


@dataclass(frozen=True)
class McNemar:
    """Discordant counts (only a right, only b right) and the exact two-sided p-value."""

    only_a: int
    only_b: int
    p: float


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedBootstrap:
    """Bootstrap interval and p-value of mean(a) − mean(b) over the same resampled images.

    The p-value is the two-sided achieved significance level read off the same resamples as
    the interval: twice the smaller share of resampled differences on either side of 0 (with
    the +1 of a Monte Carlo p-value, so never 0), i.e. about the smallest 1 − level at which
    the percentile interval would exclude 0. The table's interval and p-value therefore agree.
    """
    a, b = _paired(a, b)
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples} must be at least 1")
    diff = a - b
    n = len(diff)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CELLS_PER_CHUNK // n)
    deltas = np.concatenate(
        [
            diff[rng.integers(0, n, size=(min(per_chunk, n_resamples - done), n))].mean(1)
            for done in range(0, n_resamples, per_chunk)
        ]
    )
    alpha = (1 - level) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    # Exact zeros count on both sides: identical classifiers get p = 1, not a coin flip.
    below, above = int((deltas <= 0).sum()), int((deltas >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (n_resamples + 1))
    return PairedBootstrap(float(diff.mean()), float(low), float(high), p, level, n_resamples, seed)


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> McNemar:
    """Exact McNemar test of two classifiers' 0/1 correctness on the same images."""
    a, b = _paired(a_correct, b_correct)
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise ValueError("McNemar's test takes 0/1 correctness per image (one run each)")
    only_a = int(((a == 1) & (b == 0)).sum())
    only_b = int(((a == 0) & (b == 1)).sum())
    return McNemar(only_a, only_b, binomial_two_sided(min(only_a, only_b), only_a + only_b))


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair-coin tosses (doubled smaller tail).

    Computed in integers, so exact for any n (a test set of 10^5 discordant images included).
    """
    if not 0 <= k <= n:
        raise ValueError(f"k={k} successes out of n={n}: expected 0 <= k <= n")
    if n == 0:
        return 1.0
    k = min(k, n - k)
    term = tail = 1  # C(n, 0); each next binomial coefficient from the last one
    for i in range(1, k + 1):
        term = term * (n - i + 1) // i
        tail += term
    return min(1.0, 2 * tail / 2**n)


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.size} and {b.size} images")
    if a.size == 0:
        raise ValueError("no images to compare")
    return a, b
