"""Splits and the shuffle order are deterministic functions of their seeds."""

from __future__ import annotations

import numpy as np

from realfake.data.batches import EpochShuffleSampler
from realfake.data.splits import TEST_STREAM, carve_count, stratified_split


def test_stratified_split_is_deterministic_and_stratified() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    kept, carved = stratified_split(labels, 0.1, seed=3)
    again = stratified_split(labels, 0.1, seed=3)
    assert np.array_equal(kept, again[0]) and np.array_equal(carved, again[1])
    assert np.bincount(labels[carved]).tolist() == [5, 3, 2]
    assert sorted(np.concatenate([kept, carved]).tolist()) == list(range(100))
    other = stratified_split(labels, 0.1, seed=4)[1]
    assert not np.array_equal(carved, other)
    test = stratified_split(labels, 0.1, seed=3, stream=TEST_STREAM)[1]
    assert not np.array_equal(carved, test)  # test and val carving use separate streams


def test_a_class_split_depends_only_on_its_own_images() -> None:
    a = stratified_split(np.array([0] * 40 + [1] * 40), 0.25, seed=0)[1]
    b = stratified_split(np.array([0] * 40 + [1] * 60), 0.25, seed=0)[1]
    assert np.array_equal(a[a < 40], b[b < 40])


def test_carve_count_keeps_at_least_one_on_each_side() -> None:
    assert carve_count(5, 0.1) == 1 and carve_count(1, 0.5) == 0 and carve_count(4, 0.9) == 3
    assert carve_count(100, 0.0) == 0 and carve_count(10_000, 0.15) == 1500


def test_sampler_order_is_a_function_of_seed_and_epoch() -> None:
    s = EpochShuffleSampler(100, seed=5)
    first = list(s)
    assert sorted(first) == list(range(100)) and first != list(range(100))
    assert list(EpochShuffleSampler(100, seed=5)) == first
    s.set_epoch(1)
    second = list(s)
    assert second != first
    s.set_epoch(0)
    assert list(s) == first
    assert list(EpochShuffleSampler(100, seed=6)) != first
    assert len(s) == 100
