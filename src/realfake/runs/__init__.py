"""Trained runs on disk, without the training stack: the run directory and the model spec."""

from realfake.runs.rundir import (
    RunDir,
    checkpoint_spec,
    file_sha256,
    load_checkpoint,
    model_state,
    read_json,
    resolve_checkpoint,
    resolve_run,
    run_of_checkpoint,
    write_json,
)
from realfake.runs.spec import FrozenThreshold, ModelSpec, default_positive_class

__all__ = [
    "FrozenThreshold",
    "ModelSpec",
    "RunDir",
    "checkpoint_spec",
    "default_positive_class",
    "file_sha256",
    "load_checkpoint",
    "model_state",
    "read_json",
    "resolve_checkpoint",
    "resolve_run",
    "run_of_checkpoint",
    "write_json",
]
