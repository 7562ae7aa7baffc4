"""Export a trained model to one ONNX graph: uint8 images in, class probabilities out.

The graph holds everything between the prepared image and the probabilities, so a consumer
needs only ONNX Runtime and the decoding rule in the spec: normalisation with the training
split's mean and std, the network, softmax and (optionally) flip TTA, all through the very
functions the torch Predictor calls (``normalize``, ``tta_probabilities``). The batch axis is
dynamic; the spec (classes, preprocessing, positive class, frozen threshold), the baked-in TTA,
the checkpoint's SHA-256 and the realfake version go into the file's ``metadata_props``.
"""

from __future__ import annotations

import copy
import glob
import json
import logging
import time
from pathlib import Path
from typing import IO

import numpy as np
import torch
from torch import nn

from realfake import __version__
from realfake.atomic import check_writable_file, replacing
from realfake.data.augment import normalize
from realfake.errors import ConfigError
from realfake.inference.onnx import (
    INSTALL_HINT,
    META_FLIP_TTA,
    META_SHA256,
    META_SPEC,
    META_VERSION,
    OnnxPredictor,
)
from realfake.inference.predictor import Predictor, tta_probabilities
from realfake.inference.rule import frozen_for

# 18 is the oldest opset torch's exporter (torch.export based, the default since torch 2.9)
# writes without a version conversion; ONNX Runtime has run it since 1.14.
DEFAULT_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
# The exported graph must reproduce the Predictor: measured differences are ~1e-7 (float32
# rounding in a different operator order); 1e-4 is the parity promised for the ONNX export.
PARITY_TOLERANCE = 1e-4

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: a file another process has open cannot be removed anyway
    fcntl = None


class ProbabilityGraph(nn.Module):
    """uint8 N×3×S×S -> N×C probabilities: normalisation, network, softmax, flip TTA if asked."""

    def __init__(self, model: nn.Module, mean, std, flip: bool) -> None:
        super().__init__()
        self.model = model
        self.mean, self.std, self.flip = tuple(mean), tuple(std), flip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return tta_probabilities(self.model, normalize(images, self.mean, self.std), self.flip)


def export_onnx(
    ref_or_predictor: str | Path | Predictor,
    out: str | Path,
    *,
    tta: bool | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write the model of a run, .ckpt or Predictor to ``out`` as ONNX; returns ``out``.

    ``tta`` None bakes in the run's own flip TTA. The file is checked with ``onnx.checker``
    and run with ONNX Runtime against torch (batches of 1 and 3) before it replaces ``out``:
    a graph that disagrees is never written.
    """
    out = check_writable_file(out, force=True)  # before the export's seconds of work
    remove_stale_parts(out)
    onnx = _onnx()
    predictor = (
        ref_or_predictor
        if isinstance(ref_or_predictor, Predictor)
        else Predictor.load(ref_or_predictor)
    )
    flip = predictor.resolve_tta(tta)
    # The threshold frozen for these weights travels with the graph (the run's model.json
    # holds it); the scorer that loads the graph checks it against the baked-in TTA.
    run_spec = predictor.run.spec if predictor.run is not None else None
    frozen, _ = frozen_for(predictor.spec, predictor.sha256, run_spec)
    spec = predictor.spec.with_threshold(frozen)
    # Exported on the CPU from a contiguous fp32 copy: the predictor (maybe on a GPU, maybe
    # channels_last) is left as it was.
    model = copy.deepcopy(predictor.model).cpu().float().eval()
    model = model.to(memory_format=torch.contiguous_format)
    graph = ProbabilityGraph(model, spec.mean, spec.std, flip).eval()
    size = spec.image_size
    # Batch 2, not 1: torch.export specialises a dimension whose example size is 1.
    example = torch.zeros(2, 3, size, size, dtype=torch.uint8)
    with torch.inference_mode(False):  # torch.export cannot trace under inference mode
        program = torch.onnx.export(
            graph,
            (example,),
            None,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset,
            verbose=False,
        )
    proto = program.model_proto
    proto.doc_string = (
        f"realfake {spec.model}: uint8 RGB images N×3×{size}×{size} -> probabilities of "
        f"{', '.join(spec.classes)}{' (flip TTA inside)' if flip else ''}"
    )
    metadata = {
        META_SPEC: json.dumps(spec.to_dict(), sort_keys=True),
        META_FLIP_TTA: "true" if flip else "false",
        META_SHA256: predictor.sha256,
        META_VERSION: __version__,
    }
    for key, value in metadata.items():  # added to whatever the exporter wrote
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    held: IO[bytes] | None = None
    try:
        with replacing(out) as tmp:
            # Locked from its first instant until renamed: the mark of a live export that
            # remove_stale_parts (in another export to the same path) leaves alone.
            held = _lock(tmp)
            onnx.save_model(proto, tmp, format="protobuf")  # (the suffix is .part)
            _check_parity(graph, OnnxPredictor.load(tmp))
    finally:
        if held is not None:
            held.close()
    log.debug("exported %s to %s (flip TTA %s)", spec.model, out, "on" if flip else "off")
    return out


def remove_stale_parts(out: Path) -> list[Path]:
    """Remove the temporary files beside ``out`` that a killed export left; returns them.

    An export that fails or is stopped by a signal removes its own ``.OUT.*.part``; ``kill -9``
    lets no code run, so the next export to the same path does it. A part whose lock is held
    belongs to an export still running and stays, and so does one younger than a second (the
    instant between a part's creation and its lock).
    """
    removed = []
    for part in sorted(out.parent.glob(f".{glob.escape(out.name)}.*.part")):
        try:
            if time.time() - part.stat().st_mtime < 1.0:
                continue
            if fcntl is None:
                part.unlink()
            else:
                with part.open("rb") as handle:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    part.unlink()
        except OSError:  # held by a running export (BlockingIOError), or already gone
            continue
        log.warning("removed %s, left by an export to %s that was killed", part, out.name)
        removed.append(part)
    return removed


def _lock(path: Path) -> IO[bytes]:
    """``path`` opened and exclusively locked (POSIX); the lock lasts until it is closed."""
    handle = path.open("rb")
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def _check_parity(graph: ProbabilityGraph, exported: OnnxPredictor) -> None:
    """ONNX Runtime gives the traced module's probabilities on random images, batches 1 and 3.

    Compared with the CPU copy that was traced (the Predictor's own functions), not the
    Predictor itself, which may run on a GPU in TF32.
    """
    size = exported.image_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, size, size), dtype=torch.uint8, generator=generator)
    with torch.inference_mode():
        expected = graph(images).double().numpy()
    got = np.concatenate([exported.probabilities(images[:1]), exported.probabilities(images[1:])])
    worst = float(np.abs(got - expected).max())
    if not worst <= PARITY_TOLERANCE:
        raise RuntimeError(
            f"the exported graph of {exported.spec.model} differs from torch by {worst:.2e} "
            f"(> {PARITY_TOLERANCE}): an exporter bug, please report it"
        )


def _onnx():
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise ConfigError(f"ONNX export needs onnx and onnxscript; {INSTALL_HINT}") from None
    return onnx
