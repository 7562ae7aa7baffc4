"""What a running service may do: its address, limits, batching, decoding and access control.

``ServeSettings`` is the one place the defaults are written: ``realfake serve``'s options take
theirs from here (a test compares them), and any field can also come from the environment as
``REALFAKE_SERVE_<FIELD>`` (the API key as ``REALFAKE_API_KEY``: a key on the command line would
be visible in ``ps``). Arguments win over the environment.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from realfake.errors import ConfigError

MB = 1024 * 1024
ENV_PREFIX = "REALFAKE_SERVE_"


class ServeSettings(BaseSettings):
    """Settings of one service; the defaults are the safe ones (loopback, no CORS, limits on)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # compose passes unset variables as "": that means the default
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
    )

    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)  # processes, each with its own model
    backend: Literal["auto", "torch", "onnx"] = "auto"  # auto: by the file, .onnx -> onnx
    device: str = "cpu"
    max_body_bytes: int = Field(10 * MB, ge=1)  # whole request body, counted while it streams
    max_files: int = Field(16, ge=1)  # images per /predict request
    # Pixels an upload may declare (width × height), checked on the header before decoding:
    # 40 MP covers phone photos; a 20000×20000 "bomb" PNG (400 MP, 1.2 GB of RGB) is refused.
    max_pixels: int = Field(40_000_000, ge=1)
    batch_wait_ms: float = Field(2.0, ge=0)  # how long the first image of a batch waits
    max_batch: int = Field(64, ge=1)  # images per forward pass
    # Threads decoding uploads, off the event loop; at most ``large_decodes`` of them decode an
    # image over 4 MP at once (a 36 MP PNG needs ~110 MB of RGB while it decodes), so big
    # uploads queue for each other and never take every decode thread from small ones.
    decode_threads: int = Field(2, ge=1)
    large_decodes: int = Field(1, ge=1)
    api_key: str | None = Field(
        None,
        validation_alias="REALFAKE_API_KEY",
        description="when set, requests must carry it in the X-API-Key header",
        repr=False,  # settings get logged; the key does not
    )
    cors_origins: tuple[str, ...] = ()  # empty: CORS off
    # px of each half of the Grad-CAM overlay, the size the page shows it at: a 32 px image
    # enlarged 8× and its map upsampled bilinearly to the same size.
    explain_size: int = Field(256, ge=16)
    # Intra-op threads of the model in each worker process; None: chosen by backend (below).
    threads: int | None = Field(None, ge=1)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_one_sentence(exc)) from None
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("an empty API key protects nothing; leave it unset or give one")
        if self.large_decodes > self.decode_threads:
            raise ConfigError(
                f"serve setting large_decodes={self.large_decodes}: expected at most "
                f"decode_threads={self.decode_threads}"
            )

    def model_threads(self) -> int:
        """The intra-op threads the model gets in one worker process: its share of the cores.

        Measured at 64 clients on 2 idle cores: torch served 361 requests/s with two threads
        and 181 with one; ONNX Runtime (threads that wait without spinning) 492. On cores that
        other busy processes share, torch's two threads collapsed to 41-50 requests/s and one
        thread kept 169: there, pass ``threads=1`` (BENCHMARKS.md, "Serving").
        """
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def to_json(self) -> str:
        """The settings as JSON (how worker processes receive them)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        """Settings written by ``to_json``; fields this version does not know are left out."""
        import json

        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.model_fields})

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name``, as written here (the environment does not change it)."""
        return cls.model_fields[name].get_default(call_default_factory=True)


def _one_sentence(exc: ValidationError) -> str:
    """The first problem of a validation error, naming the setting and its variable."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    name = "api_key" if name == "REALFAKE_API_KEY" else name
    variable = "REALFAKE_API_KEY" if name == "api_key" else f"{ENV_PREFIX}{name.upper()}"
    return (
        f"serve setting {name}={error.get('input')!r} (an argument or ${variable}): "
        f"{error['msg'][0].lower()}{error['msg'][1:]}"
    )
