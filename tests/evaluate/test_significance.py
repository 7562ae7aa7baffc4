"""The paired tests of the study tables against values known exactly or by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realfake.evaluate.significance import binomial_two_sided, mcnemar_exact, paired_bootstrap


def test_exact_binomial_p_by_hand():
    # 2 of 10 fair tosses: P(X <= 2) = (1 + 10 + 45) / 1024; two-sided doubles it.
    assert binomial_two_sided(2, 10) == 2 * 56 / 1024
    assert binomial_two_sided(8, 10) == binomial_two_sided(2, 10)  # the smaller tail either way
    assert binomial_two_sided(0, 5) == 2 / 32
    assert binomial_two_sided(5, 10) == 1.0  # the doubled middle is capped at 1
    assert binomial_two_sided(0, 0) == 1.0  # no discordant image: no evidence either way
    with pytest.raises(ValueError, match="0 <= k <= n"):
        binomial_two_sided(11, 10)


def test_exact_binomial_p_matches_scipy_also_for_large_counts():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(3, 17), (40, 100), (9_800, 20_000), (0, 1), (12, 24)]:
        assert binomial_two_sided(k, n) == pytest.approx(stats.binomtest(k, n).pvalue, rel=1e-9)


def test_mcnemar_counts_only_the_discordant_images():
    # 50 images both get right, 30 both wrong (ignored), 8 only a, 2 only b.
    a = np.array([1] * 50 + [0] * 30 + [1] * 8 + [0] * 2)
    b = np.array([1] * 50 + [0] * 30 + [0] * 8 + [1] * 2)
    test = mcnemar_exact(a, b)
    assert (test.only_a, test.only_b) == (8, 2)
    assert test.p == 2 * (1 + 10 + 45) / 2**10  # = 0.109375, the binomial above
    assert mcnemar_exact(b, a).p == test.p  # symmetric
    assert mcnemar_exact(a, a).p == 1.0  # identical decisions
    with pytest.raises(ValueError, match="0/1 correctness"):
        mcnemar_exact(a * 0.5, b)
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar_exact(a, b[:-1])


def test_paired_bootstrap_covers_a_known_difference():
    rng = np.random.default_rng(1)
    n = 4000
    # b right on 80 % of the images; a right wherever b is, plus on a quarter of b's errors:
    # a true gain of 0.05 that is highly significant (only positive per-image differences).
    b = rng.random(n) < 0.8
    a = b | (rng.random(n) < 0.25)
    boot = paired_bootstrap(a, b, n_resamples=2000, seed=0)
    assert boot.delta == pytest.approx(a.mean() - b.mean())
    assert boot.low <= 0.05 <= boot.high
    assert 0 < boot.low < boot.delta < boot.high
    assert boot.p == pytest.approx(2 / 2001)  # no resample at or below 0: the smallest p
    # Fixed seed: the same table every time.
    assert paired_bootstrap(a, b, n_resamples=2000, seed=0) == boot
    # Pairing matters: the same accuracies unpaired (a shuffled) give a far wider interval.
    unpaired = paired_bootstrap(rng.permutation(a), b, n_resamples=2000, seed=0)
    assert unpaired.high - unpaired.low > 2 * (boot.high - boot.low)


def test_paired_bootstrap_of_equal_classifiers_is_not_significant():
    rng = np.random.default_rng(2)
    a = rng.random(1000) < 0.7
    same = paired_bootstrap(a, a.copy(), n_resamples=500)
    assert (same.delta, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0)
    # Two independent classifiers of equal accuracy 0.7: the interval covers 0, p is large.
    b = rng.random(1000) < 0.7
    boot = paired_bootstrap(a, b, n_resamples=2000, seed=0)
    assert boot.low < 0 < boot.high and boot.p > 0.05
    # Seed-averaged correctness (fractions) is accepted.
    mixed = paired_bootstrap((a.astype(float) + b) / 2, b, n_resamples=200)
    assert math.isclose(mixed.delta, (a.mean() - b.mean()) / 2)


def test_paired_bootstrap_p_agrees_with_its_interval():
    rng = np.random.default_rng(3)
    for gain in (0.0, 0.02, 0.05):
        b = rng.random(800) < 0.75
        a = np.where(rng.random(800) < gain, True, b) & (rng.random(800) > 0.02)
        boot = paired_bootstrap(a, b, n_resamples=2000, seed=0)
        excludes_zero = boot.low > 0 or boot.high < 0
        # Same resamples: the 95 % interval excludes 0 exactly when p is about below 0.05.
        assert excludes_zero == (boot.p < 0.05) or abs(boot.p - 0.05) < 0.005
