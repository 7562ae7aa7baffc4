"""The state of one running service: its model (loaded in the background), batcher and limits."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realfake.serve.batching import BatchTiming, MicroBatcher
from realfake.serve.metrics import ServiceMetrics
from realfake.serve.model import (
    Decision,
    backend_name,
    decisions,
    load_served_predictor,
    served_threshold,
    torch_model,
)
from realfake.serve.settings import ServeSettings

log = logging.getLogger("realfake.serve")


@dataclass(frozen=True)
class Explanation:
    png: bytes
    decision: Decision
    target: str


class Service:
    """One model served: loading, readiness, batched classification and Grad-CAM."""

    def __init__(self, model: Any, settings: ServeSettings, metrics: ServiceMetrics) -> None:
        self._source = model  # a Predictor, or a path to load one from
        self.settings = settings
        self.metrics = metrics
        self.predictor: Any = None
        self.threshold: float | None = None
        self.ready = False
        self.load_error: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batcher: MicroBatcher | None = None
        self._loading: asyncio.Future | None = None

    # --- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the batcher and load the model in the background (/health answers meanwhile)."""
        # One thread runs every model call: forward passes and Grad-CAM never overlap (Grad-CAM
        # hooks the network's last block; a concurrent forward would pass through the hook).
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="realfake-model")
        s = self.settings
        self.batcher = MicroBatcher(
            self._forward,
            self._executor,
            s.max_batch,
            s.batch_wait_ms / 1000,
            self.metrics.observe_batch,
        )
        self.batcher.start()
        self._loading = asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            predictor = self._source
            if isinstance(predictor, (str, Path)):
                s = self.settings
                threads = s.model_threads()
                predictor = load_served_predictor(predictor, s.backend, s.device, threads)
            size = predictor.image_size
            # The warm-up pass: the first forward allocates and picks kernels; no user pays it.
            predictor.probabilities(torch.zeros(1, 3, size, size, dtype=torch.uint8))
        except Exception as exc:
            self.load_error = " ".join(str(exc).split()) or type(exc).__name__
            log.exception("the model failed to load: %s", self.load_error)
            return
        self.predictor = predictor
        self.threshold = served_threshold(predictor)
        seconds = time.perf_counter() - started
        self.metrics.load_seconds.set(seconds)
        self.metrics.ready.set(1)
        self.ready = True
        log.info(
            "model %s ready in %.2f s (%s backend, threshold %s)",
            predictor.spec.model,
            seconds,
            backend_name(predictor),
            self.threshold,
        )

    async def wait_ready(self, timeout: float) -> bool:
        """Whether the model is ready within ``timeout`` seconds (for tests and scripts)."""
        if self._loading is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._loading), timeout)
        return self.ready

    # --- work ---------------------------------------------------------------------------------

    def _forward(self, images: torch.Tensor) -> np.ndarray:
        return self.predictor.probabilities(images)

    async def classify(self, images: list[torch.Tensor]) -> tuple[list[Decision], BatchTiming]:
        """Decisions on prepared images (3×S×S uint8 each), batched with concurrent requests."""
        assert self.batcher is not None
        probs, timing = await self.batcher.submit(torch.stack(images))
        self.metrics.images.inc(len(images))
        return decisions(self.predictor, probs, self.threshold), timing

    @property
    def can_explain(self) -> bool:
        return self.predictor is not None and torch_model(self.predictor) is not None

    async def explain(self, image: torch.Tensor, target: str | None) -> Explanation:
        """The Grad-CAM overlay (PNG) of one prepared image for ``target`` (default: its label)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._explain, image, target)

    def _explain(self, image: torch.Tensor, target: str | None) -> Explanation:
        from realfake.explain.gradcam import gradcam
        from realfake.explain.overlay import overlay

        predictor = self.predictor
        probs = predictor.probabilities(image[None])
        decision = decisions(predictor, probs, self.threshold)[0]
        chosen = target or decision.label
        k = predictor.classes.index(chosen)
        cam = gradcam(torch_model(predictor), predictor.normalize(image[None]), k)[0]
        caption = f"{decision.label} P={decision.probabilities[decision.label]:.3f}  map: {chosen}"
        picture = overlay(image, cam, self.settings.explain_size, caption=caption)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return Explanation(buffer.getvalue(), decision, chosen)
