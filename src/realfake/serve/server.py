"""serve(): run the service under uvicorn, in one process or several worker processes."""

from __future__ import annotations

import os
from pathlib import Path

from realfake.errors import ConfigError
from realfake.serve.settings import ServeSettings

# How worker processes learn what to serve: uvicorn starts them from an import string, so the
# model and settings travel in the environment the parent hands down.
ENV_MODEL = "REALFAKE_SERVE_MODEL"
ENV_SETTINGS = "REALFAKE_SERVE_SETTINGS"


def serve(model: str | Path, settings: ServeSettings, log_level: str = "info") -> None:
    """Serve ``model`` (run directory, .ckpt or .onnx) until interrupted."""
    import uvicorn

    if not Path(model).exists():
        raise ConfigError(f"{model}: no such run directory, checkpoint or ONNX file")
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,  # one line per request costs more than a small forward pass
        "timeout_graceful_shutdown": 10,
        # Longer than clients' idle keep-alive (httpx: 5 s), so a client never reuses a
        # connection in the instant the server closes it (a reset, not an answer).
        "timeout_keep_alive": 15,
    }
    if settings.workers == 1:
        from realfake.serve.app import create_app

        _set_threads(settings)
        uvicorn.run(create_app(str(model), settings), **common)
        return
    os.environ[ENV_MODEL] = str(Path(model).resolve())
    os.environ[ENV_SETTINGS] = settings.to_json()
    uvicorn.run(
        "realfake.serve.server:app_from_environment",
        factory=True,
        workers=settings.workers,
        **common,
    )


def app_from_environment():
    """The app a uvicorn worker process builds from what ``serve`` put in the environment."""
    from realfake.serve.app import create_app

    settings = ServeSettings.from_json(os.environ[ENV_SETTINGS])
    _set_threads(settings)
    return create_app(os.environ[ENV_MODEL], settings)


def _set_threads(settings: ServeSettings) -> None:
    """The model's thread count, set once in the server process it owns (never on import)."""
    import torch

    torch.set_num_threads(settings.model_threads())
