"""The state of one running service: its scorer (loaded in the background), decoder and batcher."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from realfake.errors import RealfakeError
from realfake.explain.gradcam import tiles_unexplained
from realfake.inference import Decision, Scorer
from realfake.inference.scorer import Scored
from realfake.inference.table import combined_verdict
from realfake.provenance import Provenance, read_provenance
from realfake.serve.batching import BatchTiming, MicroBatcher
from realfake.serve.card import model_card
from realfake.serve.images import Decoder, decode_native_upload, decode_upload
from realfake.serve.metrics import ServiceMetrics
from realfake.serve.model import ModelSource, open_scorer, public_text, torch_model
from realfake.serve.schemas import DecisionRuleRecord, ModelCard
from realfake.serve.settings import ServeSettings

log = logging.getLogger("realfake.serve")


@dataclass(frozen=True)
class Prepared:
    """One decoded upload: the network's input and, for a FAKE/REAL detector, its provenance."""

    image: torch.Tensor  # 3×S×S uint8; 3×H×W at its own size for a model scoring native tiles
    size: tuple[int, int]  # (width, height) of the file, as predict records it
    provenance: Provenance | None  # None: the classes are not FAKE/REAL, nothing to combine


@dataclass(frozen=True)
class Judged:
    """The answer on one image: the pixels' decision, and the verdict with the file's evidence.

    As ``realfake predict``'s columns: ``decision.verdict`` is pixel_verdict, ``verdict`` and
    ``reason`` are combined with the provenance rules, ``evidence`` its lines.
    """

    decision: Decision
    verdict: str
    reason: str
    evidence: list[str] | None  # None: no provenance check (classes other than FAKE/REAL)
    provenance: str | None  # the provenance rule that decided, "pixels" when none fired


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
        self.card: ModelCard | None = None  # the served model's card, from its run's records
        self.ready = False
        self.load_failure: BaseException | None = None
        self.load_error: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.decoder: Decoder | None = None
        self.batcher: MicroBatcher[Prepared] | None = None
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
        self.card = model_card(scorer, self.rule_record)
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

    @property
    def reads_provenance(self) -> bool:
        """Whether answers combine the file's provenance: a FAKE/REAL detector (as predict)."""
        return self.scorer is not None and set(self.scorer.classes) == {"FAKE", "REAL"}

    async def prepare(self, data: bytes, name: str) -> Prepared:
        """One upload decoded as predict decodes it, and its provenance read, off the event loop;
        ImageRefused if it is not an image."""
        assert self.decoder is not None and self.scorer is not None
        spec = self.scorer.spec
        to_image: Callable[[bytes], tuple[torch.Tensor, tuple[int, int]]]
        if spec.tiles:  # scored by tiles at its own size, never squashed to image_size
            to_image = functools.partial(_native, native=self.scorer.predictor.native)
        else:
            to_image = functools.partial(decode_upload, size=spec.image_size, resize=spec.resize)
        provenance = self.reads_provenance

        def decode(data: bytes) -> Prepared:
            image, size = to_image(data)
            return Prepared(image, size, read_provenance(data, name) if provenance else None)

        return await self.decoder.prepare(data, decode)

    def _forward(self, batch: list[Prepared]) -> Scored:
        """Probabilities and feature distances of one batch, from the same forward passes, and
        the files' sizes (an image far from the training sizes is UNSURE, as in predict)."""
        scorer = self.scorer
        assert scorer is not None
        images = [p.image for p in batch]
        sizes = np.array([p.size for p in batch], dtype=np.int64).reshape(-1, 2)
        if scorer.spec.tiles:  # each image at its own size, by the spec's tiles
            return scorer.score(images, sizes=sizes)
        return scorer.score(torch.stack(images), sizes=sizes)

    async def classify(self, prepared: list[Prepared]) -> tuple[list[Judged], BatchTiming]:
        """The answers on prepared uploads, their forward pass shared with concurrent requests."""
        assert self.batcher is not None and self.scorer is not None
        scored, timing = await self.batcher.submit(prepared)
        self.metrics.images.inc(len(prepared))
        decisions = self.scorer.decisions(scored.probs, scored.distances, scored.sizes)
        return [_judge(d, p.provenance) for d, p in zip(decisions, prepared, strict=True)], timing

    @property
    def explain_unavailable(self) -> str | None:
        """Why this service has no Grad-CAM, in one sentence; None when it has."""
        scorer = self.scorer
        if scorer is None:
            return "the model is not loaded yet"
        if torch_model(scorer) is None:
            return (
                "Grad-CAM needs the network's gradients (the torch backend); this service runs "
                f"an exported {scorer.backend.upper()} graph"
            )
        return tiles_unexplained(scorer.spec)

    @property
    def can_explain(self) -> bool:
        return self.explain_unavailable is None

    async def explain(self, prepared: Prepared, target: str | None) -> Explanation:
        """The Grad-CAM overlay (PNG) of one prepared upload for ``target`` (default: its label)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._explain, prepared, target)

    def _explain(self, prepared: Prepared, target: str | None) -> Explanation:
        from realfake.explain.gradcam import gradcam
        from realfake.explain.overlay import overlay

        scorer = self.scorer
        assert scorer is not None
        image = prepared.image
        scored = scorer.score(image[None], sizes=np.array([prepared.size]))
        decision = scorer.decisions(scored.probs, scored.distances, scored.sizes)[0]
        chosen = target or decision.label
        k = scorer.classes.index(chosen)
        network = torch_model(scorer)
        size = self.settings.explain_size
        # The layer's coarse map (4×4 for a 32 px fastnet) goes bilinearly straight to the
        # display size: smooth, where enlarging a 32 px map would show its blocks. No caption in
        # the pixels: the decision travels in the headers and the page writes its own caption.
        x = scorer.predictor.normalize(image[None])
        cam = gradcam(network, x, k, size=(size, size))[0]
        buffer = io.BytesIO()
        overlay(image, cam, size).save(buffer, format="PNG")
        return Explanation(buffer.getvalue(), decision, chosen)


def _native(
    data: bytes, native: Callable[[bytes], torch.Tensor]
) -> tuple[torch.Tensor, tuple[int, int]]:
    """An upload at its own size, upright, and that size (width, height), as predict reads it."""
    image = decode_native_upload(data, native)
    return image, (int(image.shape[-1]), int(image.shape[-2]))


def _judge(decision: Decision, provenance: Provenance | None) -> Judged:
    """The verdict on one image as ``realfake predict`` gives it: pixels, then provenance."""
    if provenance is None:
        return Judged(decision, decision.verdict, decision.reason, None, None)
    verdict, reason, combined = combined_verdict(decision.verdict, decision.reason, provenance)
    return Judged(decision, verdict, reason, provenance.lines(), combined.rule)
