"""What a running service may do: its address, its limits, batching, access control."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

from realfake.errors import ConfigError

MB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """Settings of one service; the defaults are the safe ones (loopback, no CORS, limits on)."""

    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    workers: int = 1  # processes, each with its own model
    backend: str = "auto"  # auto | torch | onnx (auto: by the file, .onnx -> onnx)
    device: str = "cpu"
    max_body_bytes: int = 10 * MB  # whole request body, counted while it streams in
    max_files: int = 16  # images per /predict request
    # Pixels an upload may declare (width × height), checked on the header before decoding:
    # 40 MP covers phone photos; a 20000×20000 "bomb" PNG (400 MP, 1.2 GB of RGB) is refused.
    max_pixels: int = 40_000_000
    batch_wait_ms: float = 2.0  # how long the first image of a batch waits for company
    max_batch: int = 64  # images per forward pass
    api_key: str | None = None  # when set, requests must carry it in the X-API-Key header
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # empty: CORS off
    explain_size: int = 192  # px of each half of the Grad-CAM overlay
    # Intra-op threads of the model in each worker process; None: chosen by backend (below).
    threads: int | None = None

    def __post_init__(self) -> None:
        positive = ("port", "workers", "max_body_bytes", "max_files", "max_pixels", "max_batch")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"serve setting {name}={getattr(self, name)}: expected >= 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"serve setting threads={self.threads}: expected >= 1")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"serve setting batch_wait_ms={self.batch_wait_ms}: expected >= 0")
        if self.backend not in ("auto", "torch", "onnx"):
            raise ConfigError(f"backend {self.backend!r}: expected auto, torch or onnx")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("an empty API key protects nothing; leave it unset or give one")

    def model_threads(self) -> int:
        """The intra-op threads the model gets in one worker process: its share of the cores.

        Measured at 64 clients on 2 idle cores: torch served 361 requests/s with two threads
        and 181 with one; ONNX Runtime (threads that wait without spinning) 492. On cores that
        other busy processes share, torch's two threads collapsed to 41-50 requests/s and one
        thread kept 169: there, pass ``threads=1`` (BENCHMARKS.md, issue 15).
        """
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def to_json(self) -> str:
        """The settings as JSON (how worker processes receive them)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["cors_origins"] = tuple(data.get("cors_origins") or ())
        return cls(**data)
