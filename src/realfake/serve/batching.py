"""Micro-batching: images of requests that arrive together go through one forward pass.

A request puts its images on a queue and awaits a future. One worker task takes the first
waiting request, gathers more until ``max_batch`` images or ``max_wait`` seconds, runs ONE
forward pass on the model's thread and resolves each request's future with its rows (the
probabilities and, where the run has a feature-distance reference, the distances read from the
same pass). While a forward pass runs, new requests queue up and form the next batch at once:
under load batches grow by themselves, and an idle service adds at most ``max_wait`` to a
request's latency. Each request's items (the service's prepared uploads: an image with its
original size) travel as a list, so a model that scores native tiles gets each image at its own
size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from realfake.inference.scorer import Scored

T = TypeVar("T")  # one image as the batch function takes it

log = logging.getLogger(__name__)


@dataclass
class _Job(Generic[T]):
    images: list[T]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchTiming:
    """Where a request's model time went: waiting for its batch, and the batch's forward pass."""

    wait_s: float
    forward_s: float
    batch_images: int


BatchObserver = Callable[[int, float], None]  # (images in the batch, forward seconds)


class MicroBatcher(Generic[T]):
    """Gathers images of concurrent requests into forward passes of ``run_batch``."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Scored],
        executor: Executor,
        max_batch: int = 64,
        max_wait: float = 0.002,
        observe: BatchObserver | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._observe = observe
        self._jobs: deque[_Job[T]] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the service is shutting down"))

    async def submit(self, images: list[T]) -> tuple[Scored, BatchTiming]:
        """The scores (k rows) of ``images``, and how they were batched."""
        if self._task is None or self._arrived is None:
            raise RuntimeError("the batcher is not running")
        job = _Job(list(images), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._arrived.set()
        return await job.future

    async def _work(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                self._arrived.clear()
                await self._arrived.wait()
            batch = await self._gather()
            started = time.perf_counter()
            x = [image for job in batch for image in job.images]
            try:
                scored = await loop.run_in_executor(self._executor, self._run_batch, x)
            except Exception as exc:  # every request of the batch learns of it, the worker lives
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            forward = time.perf_counter() - started
            if self._observe is not None:
                self._observe(len(x), forward)
            row = 0
            for job in batch:
                k = len(job.images)
                if not job.future.done():  # a client that left has a cancelled future
                    timing = BatchTiming(started - job.queued, forward, len(x))
                    job.future.set_result((_rows(scored, row, row + k), timing))
                row += k

    async def _gather(self) -> list[_Job[T]]:
        """The next batch: jobs in arrival order, up to max_batch images or max_wait seconds."""
        assert self._arrived is not None
        batch = [self._jobs.popleft()]
        n = len(batch[0].images)
        deadline = time.perf_counter() + self.max_wait
        while n < self.max_batch:
            if not self._jobs:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    # Waiting on an event (not a queue) loses nothing when the wait times out.
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
                continue
            k = len(self._jobs[0].images)
            if n + k > self.max_batch:
                break  # it leads the next batch
            batch.append(self._jobs.popleft())
            n += k
        return batch


def _rows(scored: Scored, start: int, stop: int) -> Scored:
    """Rows ``start:stop`` of a batch's scores: one request's share."""
    distances = None if scored.distances is None else scored.distances[start:stop]
    sizes = None if scored.sizes is None else scored.sizes[start:stop]
    return Scored(scored.probs[start:stop], distances, sizes)
