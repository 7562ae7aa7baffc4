"""Micro-batching: images of requests that arrive together go through one forward pass.

A request puts its images on a queue and awaits a future. One worker task takes the first
waiting request, gathers more until ``max_batch`` images or ``max_wait`` seconds, runs ONE
forward pass on the model's thread and resolves each request's future with its rows. While a
forward pass runs, new requests queue up and form the next batch at once: under load batches
grow by themselves, and an idle service adds at most ``max_wait`` to a request's latency.
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

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class _Job:
    images: torch.Tensor  # k×3×S×S uint8
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchTiming:
    """Where a request's model time went: waiting for its batch, and the batch's forward pass."""

    wait_s: float
    forward_s: float
    batch_images: int


BatchObserver = Callable[[int, float], None]  # (images in the batch, forward seconds)


class MicroBatcher:
    """Gathers images of concurrent requests into forward passes of ``run_batch``."""

    def __init__(
        self,
        run_batch: Callable[[torch.Tensor], np.ndarray],
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
        self._jobs: deque[_Job] = deque()
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

    async def submit(self, images: torch.Tensor) -> tuple[np.ndarray, BatchTiming]:
        """Probabilities (k×C) of ``images`` (k×3×S×S uint8), and how the request was batched."""
        if self._task is None or self._arrived is None:
            raise RuntimeError("the batcher is not running")
        job = _Job(images, asyncio.get_running_loop().create_future())
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
            x = torch.cat([job.images for job in batch]) if len(batch) > 1 else batch[0].images
            try:
                probs = await loop.run_in_executor(self._executor, self._run_batch, x)
            except Exception as exc:  # every request of the batch learns of it, the worker lives
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            forward = time.perf_counter() - started
            if self._observe is not None:
                self._observe(x.shape[0], forward)
            row = 0
            for job in batch:
                k = job.images.shape[0]
                if not job.future.done():  # a client that left has a cancelled future
                    timing = BatchTiming(started - job.queued, forward, x.shape[0])
                    job.future.set_result((probs[row : row + k], timing))
                row += k

    async def _gather(self) -> list[_Job]:
        """The next batch: jobs in arrival order, up to max_batch images or max_wait seconds."""
        assert self._arrived is not None
        batch = [self._jobs.popleft()]
        n = batch[0].images.shape[0]
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
            k = self._jobs[0].images.shape[0]
            if n + k > self.max_batch:
                break  # it leads the next batch
            batch.append(self._jobs.popleft())
            n += k
        return batch
