"""One loader for every backend: runs and .ckpt files run with torch, .onnx with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import torch

from realfake.errors import ConfigError
from realfake.inference.predictor import BasePredictor, Predictor

BACKENDS = ("auto", "torch", "onnx")


def is_onnx_file(ref: str | Path) -> bool:
    """Whether ``ref`` names an exported ONNX file (by its .onnx suffix)."""
    return Path(ref).suffix.lower() == ".onnx"


def load_predictor(
    ref: str | Path,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> BasePredictor:
    """A predictor for a run directory, .ckpt or .onnx file; ``auto``: .onnx → ONNX Runtime.

    ``threads`` sets ONNX Runtime's intra-op threads; torch's thread count is process-wide
    (``torch.set_num_threads``), so it stays with the process that owns it.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is unknown; expected one of {', '.join(BACKENDS)}")
    onnx_file = is_onnx_file(ref)
    if backend == "torch" and onnx_file:
        raise ConfigError(f"{ref} is an ONNX file; load it with backend onnx (or auto)")
    if backend == "onnx" and not onnx_file:
        raise ConfigError(
            f"backend onnx runs .onnx files and {ref} is not one; export it first with "
            f"`realfake export {ref} --format onnx --out model.onnx`"
        )
    if onnx_file:
        from realfake.inference.onnx import OnnxPredictor

        return OnnxPredictor.load(ref, device, threads)
    return Predictor.load(ref, device)
