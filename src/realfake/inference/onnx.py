"""OnnxPredictor: an exported graph (``realfake export --format onnx``) run by ONNX Runtime.

The graph takes the prepared uint8 images N×3×S×S and returns N×C probabilities: normalisation,
softmax and (when exported so) flip TTA are inside it. Decoding, resizing, batching and the
decision come from ``BasePredictor``, so on the same images it gives the torch Predictor's labels.
ONNX Runtime is imported when a file is loaded, never by ``import realfake.inference``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realfake.errors import CheckpointError, ConfigError, DataError
from realfake.inference.predictor import BasePredictor
from realfake.runs import ModelSpec

# The file's metadata_props: what realfake writes and reads back.
META_SPEC = "realfake.spec"  # ModelSpec.to_dict() as JSON, frozen threshold included
META_FLIP_TTA = "realfake.flip_tta"  # "true" / "false": flip TTA is inside the graph
META_SHA256 = "realfake.checkpoint_sha256"  # the checkpoint the weights came from
META_VERSION = "realfake.version"  # the realfake release that exported it
INSTALL_HINT = "pip install 'realfake[onnx]'"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX Runtime is not installed; {INSTALL_HINT}") from None
    return onnxruntime


def providers(device: str | torch.device) -> list[Any]:
    """ONNX Runtime execution providers for a torch-style device name (cpu, cuda, cuda:N)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return ["CPUExecutionProvider"]
    if dev.type == "cuda":
        if "CUDAExecutionProvider" not in _onnxruntime().get_available_providers():
            raise ConfigError(
                f"device {device}: this ONNX Runtime has no CUDA provider; install "
                "onnxruntime-gpu or use device cpu"
            )
        return [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
    raise ConfigError(f"device {device}: the ONNX backend runs on cpu or cuda[:N]")


class OnnxPredictor(BasePredictor):
    """An exported .onnx file with its spec (from the file's metadata), run by ONNX Runtime."""

    backend = "onnx"

    def __init__(
        self,
        session: Any,
        spec: ModelSpec,
        path: Path,
        checkpoint_sha256: str = "",
        metadata: dict[str, str] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(spec, path, None)
        self.session = session
        self.device = torch.device(device)  # where ONNX Runtime runs (images go via the CPU)
        self.metadata = dict(metadata or {})
        self._sha256 = checkpoint_sha256
        self._input = session.get_inputs()[0].name

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device = "cpu", threads: int | None = None
    ) -> OnnxPredictor:
        """The .onnx file at ``path``; its spec and baked-in flip TTA come from its metadata.

        ``threads``: ONNX Runtime's intra-op threads, which then wait without spinning (a
        server sharing its cores with an event loop); None keeps ONNX Runtime's defaults.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        ort = _onnxruntime()
        chosen = providers(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph fusions
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads={threads}: expected >= 1")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Idle pool threads otherwise spin for a while after each run, burning the core
            # that the HTTP event loop needs between forward passes.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        state = ort.capi.onnxruntime_pybind11_state
        unreadable = (state.Fail, state.InvalidProtobuf, state.InvalidGraph, state.NoSuchFile)
        try:
            session = ort.InferenceSession(str(path), options, providers=chosen)
        except unreadable as exc:
            # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from X failed:Protobuf ..."
            reason = str(exc).strip().splitlines()[0].rsplit(":", 1)[-1].strip()
            raise CheckpointError(f"{path}: not a readable ONNX model ({reason})") from None
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        if META_SPEC not in metadata:
            raise CheckpointError(
                f"{path} has no realfake metadata ({META_SPEC}); export one with "
                "`realfake export RUN --format onnx`"
            )
        flip = metadata.get(META_FLIP_TTA)
        if flip not in ("true", "false"):
            raise CheckpointError(f"{path}: metadata {META_FLIP_TTA} is {flip!r}, not true/false")
        try:
            stored = json.loads(metadata[META_SPEC])
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: metadata {META_SPEC} is not JSON ({exc})") from None
        if not isinstance(stored, dict):
            raise CheckpointError(f"{path}: metadata {META_SPEC} is not a JSON object")
        # The spec of this predictor says what the graph does: TTA is fixed at export. The
        # frozen threshold keeps the TTA it was chosen with, so the scorer's rule can check.
        spec = ModelSpec.from_dict(
            {**stored, "flip_tta": flip == "true"}, f"{path} metadata {META_SPEC}"
        )
        _check_signature(session, spec, path)
        return cls(session, spec, path, metadata.get(META_SHA256, ""), metadata, device)

    @property
    def sha256(self) -> str:
        """SHA-256 of the checkpoint the graph was exported from (the frozen threshold's key)."""
        return self._sha256

    def resolve_tta(self, tta: bool | None) -> bool:
        """The graph's flip TTA; asking for the other is a ConfigError (it is fixed at export)."""
        baked = self.spec.flip_tta
        if tta is not None and bool(tta) != baked:
            flag = "--tta" if tta else "--no-tta"
            raise ConfigError(
                f"{self.checkpoint} was exported with flip TTA {'on' if baked else 'off'}; "
                f"re-export it with `realfake export RUN --format onnx {flag}` to predict "
                f"with{'' if tta else 'out'} it"
            )
        return baked

    def _forward(self, images: torch.Tensor, flip: bool) -> np.ndarray:
        size = self.spec.image_size
        if tuple(images.shape[1:]) != (3, size, size):
            raise DataError(
                f"{self.checkpoint} takes uint8 images N×3×{size}×{size}, got "
                f"{tuple(images.shape)}; resize them (resize=True)"
            )
        x = np.ascontiguousarray(images.cpu().numpy())
        return self.session.run(None, {self._input: x})[0].astype(np.float64)


def _check_signature(session: Any, spec: ModelSpec, path: Path) -> None:
    """The graph takes uint8 N×3×S×S at the spec's size and gives N×C: or a CheckpointError."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    size, n = spec.image_size, len(spec.classes)
    ok = (
        len(inputs) == 1
        and len(outputs) == 1
        and inputs[0].type == "tensor(uint8)"
        and list(inputs[0].shape[1:]) == [3, size, size]
        and outputs[0].type == "tensor(float)"
        and list(outputs[0].shape[1:]) == [n]
    )
    if not ok:
        got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        raise CheckpointError(
            f"{path}: expected one input uint8 [N, 3, {size}, {size}] and one output "
            f"float [N, {n}], got input(s) {got}"
        )
