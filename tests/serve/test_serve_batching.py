"""The micro-batcher: concurrent requests share forward passes, each gets its own rows back."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from realfake.inference.scorer import Scored
from realfake.serve.batching import MicroBatcher


def _images(value: int, k: int = 1, side: int = 2) -> list[torch.Tensor]:
    return [torch.full((3, side, side), value, dtype=torch.uint8) for _ in range(k)]


class _Model:
    """Probability rows and distances that name their image (its pixel value and size), and the
    batch sizes seen."""

    def __init__(self, fail: bool = False) -> None:
        self.sizes: list[int] = []
        self.fail = fail

    def __call__(self, x: list[torch.Tensor]) -> Scored:
        self.sizes.append(len(x))
        if self.fail:
            raise RuntimeError("forward failed")
        values = np.array([float(image[0, 0, 0]) for image in x])
        sides = np.array([float(image.shape[-1]) for image in x])
        return Scored(np.stack([values, -values], axis=1), sides)


async def _run(model, jobs, max_batch, max_wait):
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(model, pool, max_batch=max_batch, max_wait=max_wait)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(j) for j in jobs), return_exceptions=True)
        finally:
            await batcher.stop()


def test_requests_that_arrive_together_share_one_forward_pass():
    model = _Model()
    jobs = [_images(v, k) for v, k in [(1, 1), (2, 3), (3, 1), (4, 2)]]
    out = asyncio.run(_run(model, jobs, max_batch=64, max_wait=0.05))
    assert model.sizes == [7]
    for (scored, timing), job in zip(out, jobs, strict=True):
        assert scored.probs.shape == (len(job), 2)
        assert (scored.probs[:, 0] == job[0][0, 0, 0].item()).all()  # its own rows, in order
        assert timing.batch_images == 7


def test_images_of_their_own_sizes_share_a_pass_and_get_their_own_distances_back():
    """A model that scores native tiles gets each image at its size; distances travel too."""
    model = _Model()
    jobs = [_images(1, 2, side=70), _images(2, 1, side=32), _images(3, 1, side=100)]
    out = asyncio.run(_run(model, jobs, max_batch=64, max_wait=0.05))
    assert model.sizes == [4]
    assert [s.distances.tolist() for s, _ in out] == [[70.0, 70.0], [32.0], [100.0]]
    assert [s.probs[:, 0].tolist() for s, _ in out] == [[1.0, 1.0], [2.0], [3.0]]


def test_a_batch_never_exceeds_max_batch_and_keeps_arrival_order():
    model = _Model()
    jobs = [_images(v) for v in range(10)]
    out = asyncio.run(_run(model, jobs, max_batch=4, max_wait=0.05))
    assert model.sizes == [4, 4, 2]
    assert [float(s.probs[0, 0]) for s, _ in out] == list(range(10))


def test_an_idle_batcher_waits_at_most_max_wait():
    model = _Model()

    async def one():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_batch=64, max_wait=0.02)
            batcher.start()
            loop = asyncio.get_running_loop()
            started = loop.time()
            _, timing = await batcher.submit(_images(5))
            await batcher.stop()
            return loop.time() - started, timing

    elapsed, timing = asyncio.run(one())
    assert 0.015 <= timing.wait_s < 0.5 and elapsed < 1.0


def test_a_failed_forward_pass_fails_its_requests_and_the_batcher_goes_on():
    model = _Model(fail=True)

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_batch=8, max_wait=0.01)
            batcher.start()
            first = await asyncio.gather(batcher.submit(_images(1)), return_exceptions=True)
            model.fail = False
            second = await batcher.submit(_images(2))
            await batcher.stop()
            return first, second

    first, second = asyncio.run(scenario())
    assert isinstance(first[0], RuntimeError)
    assert float(second[0].probs[0, 0]) == 2.0


def test_submitting_to_a_stopped_batcher_is_an_error():
    batcher = MicroBatcher(_Model(), ThreadPoolExecutor(1))
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(batcher.submit(_images(1)))
