"""Prometheus metrics of one app, in a registry of its own (two apps in a process never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds; a 32 px request on 2 CPU cores takes milliseconds, a queue under load hundreds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    """Requests, errors, latency, batching and model load time of one service."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "realfake_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.errors = Counter(
            "realfake_errors",
            "Refused or failed requests and files by endpoint and kind",
            ["endpoint", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "realfake_request_latency_seconds",
            "Time from request to response by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "realfake_stage_seconds",
            "Where /predict time goes: parse (multipart), decode, wait (for a batch), forward",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.forward = Histogram(
            "realfake_forward_seconds",
            "Seconds per forward pass (one batch)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "realfake_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS, registry=r
        )
        self.images = Counter("realfake_images", "Images classified", registry=r)
        self.load_seconds = Gauge(
            "realfake_model_load_seconds", "Seconds to load and warm up the model", registry=r
        )
        self.ready = Gauge("realfake_model_ready", "1 once the model answers", registry=r)

    def observe_batch(self, images: int, forward_s: float) -> None:
        self.batch_size.observe(images)
        self.forward.observe(forward_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
