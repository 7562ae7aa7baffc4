"""The state of one running service: its scorer (loaded in the background), decoder and batcher."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from realfake.errors import RealfakeError
from realfake.inference import Decision, Scorer
from realfake.serve.batching import BatchTiming, MicroBatcher
from realfake.serve.images import Decoder
from realfake.serve.metrics import ServiceMetrics
from realfake.serve.model import ModelSource, open_scorer, public_text, torch_model
from realfake.serve.schemas import DecisionRuleRecord
from realfake.serve.settings import ServeSettings

log = logging.getLogger("realfake.serve")


@dataclass(frozen=True)
class Explanation:
    png: bytes
    decision: Decision
    target: str


class Service:
    """One model served: loading, readiness, decoding, batched classification and Grad-CAM.

    Public state for the server that runs it: ``ready``, ``scorer`` once loaded, and after a
    failed load ``load_failure`` (the exception) with ``load_error`` (its sentence as clients
    see it: one line, no server directories, no library text for a non-realfake error).
    """

    def __init__(
        self, model: ModelSource, settings: ServeSettings, metrics: ServiceMetrics
    ) -> None:
        self.source = model  # a Scorer, a predictor, or a path to open one from
        self.settings = settings
        self.metrics = metrics
        self.scorer: Scorer | None = None
        self.rule_record: DecisionRuleRecord | None = None  # what every answer says of its rule
        self.ready = False
        self.load_failure: BaseException | None = None
        self.load_error: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.decoder: Decoder | None = None
        self.batcher: MicroBatcher | None = None
        self._loading: asyncio.Future | None = None

    # --- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the decoder, the batcher and the model's load in the background."""
        # One thread runs every model call: forward passes and Grad-CAM never overlap (Grad-CAM
        # hooks the network's last block; a concurrent forward would pass through the hook).
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="realfake-model")
        s = self.settings
        self.decoder = Decoder(s.max_pixels, s.decode_threads, s.large_decodes)
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
        if self.decoder is not None:
            self.decoder.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            scorer = open_scorer(self.source, self.settings)
            size = scorer.image_size
            # The warm-up pass: the first forward allocates and picks kernels; no user pays it.
            scorer.probabilities(torch.zeros(1, 3, size, size, dtype=torch.uint8))
        except Exception as exc:
            self.load_failure = exc
            if isinstance(exc, RealfakeError):
                self.load_error = public_text(str(exc))
                log.error("the model failed to load: %s", exc)
            else:
                self.load_error = (
                    f"the model failed to load ({type(exc).__name__}); the server log has why"
                )
                log.exception("the model failed to load")
            return
        self.scorer = scorer
        self.rule_record = DecisionRuleRecord.of(scorer)
        seconds = time.perf_counter() - started
        self.metrics.load_seconds.set(seconds)
        self.metrics.ready.set(1)
        self.ready = True
        log.info(
            "model %s ready in %.2f s (%s backend; decides by %s)",
            scorer.spec.model,
            seconds,
            scorer.backend,
            scorer.describe_rule(),
        )

    async def wait_ready(self, timeout: float) -> bool:
        """Whether the model is ready within ``timeout`` seconds (for tests and scripts)."""
        if self._loading is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._loading), timeout)
        return self.ready

    # --- work ---------------------------------------------------------------------------------

    async def prepare(self, data: bytes) -> torch.Tensor:
        """The network's input of one upload (decoded off the event loop); ImageRefused if not."""
        assert self.decoder is not None and self.scorer is not None
        spec = self.scorer.spec
        return await self.decoder.prepare(data, spec.image_size, spec.resize)

    def _forward(self, images: torch.Tensor) -> np.ndarray:
        assert self.scorer is not None
        return self.scorer.probabilities(images)

    async def classify(self, images: list[torch.Tensor]) -> tuple[list[Decision], BatchTiming]:
        """Decisions on prepared images (3×S×S uint8 each), batched with concurrent requests."""
        assert self.batcher is not None and self.scorer is not None
        probs, timing = await self.batcher.submit(torch.stack(images))
        self.metrics.images.inc(len(images))
        return self.scorer.decisions(probs), timing

    @property
    def can_explain(self) -> bool:
        return self.scorer is not None and torch_model(self.scorer) is not None

    async def explain(self, image: torch.Tensor, target: str | None) -> Explanation:
        """The Grad-CAM overlay (PNG) of one prepared image for ``target`` (default: its label)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._explain, image, target)

    def _explain(self, image: torch.Tensor, target: str | None) -> Explanation:
        from realfake.explain.gradcam import gradcam
        from realfake.explain.overlay import overlay

        scorer = self.scorer
        assert scorer is not None
        decision = scorer.decisions(scorer.probabilities(image[None]))[0]
        chosen = target or decision.label
        k = scorer.classes.index(chosen)
        network = torch_model(scorer)
        cam = gradcam(network, scorer.predictor.normalize(image[None]), k)[0]
        caption = f"{decision.label} P={decision.probabilities[decision.label]:.3f}  map: {chosen}"
        picture = overlay(image, cam, self.settings.explain_size, caption=caption)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return Explanation(buffer.getvalue(), decision, chosen)
