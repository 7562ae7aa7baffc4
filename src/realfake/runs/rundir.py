"""The run directory: every file name a run holds, and reading and writing them.

    RUN/
      config.yaml        the resolved training config
      manifest.json      provenance: code, data, seed, versions, device, status, times
      model.json         the model spec (classes, preprocessing, decision), threshold once frozen
      metrics.csv        one row per epoch: losses, accuracies, learning rate (reproducible)
      throughput.csv     one row per epoch: images/s and seconds (timings, kept out of metrics.csv)
      results.json       final training figures
      tracking.json      the MLflow run id, to reopen it on resume
      checkpoints/       best.ckpt, last.ckpt (Lightning checkpoints with a ``model_spec``)
      metrics.json       evaluation on the run's own test split; figures/ and report.md/.html
      evaluations/NAME/  evaluations on other data (metrics.json, figures/)
      robustness/        robustness grid and audits

Nothing here imports Lightning: the predictor and the service read runs through this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realfake.atomic import write_text
from realfake.errors import CheckpointError
from realfake.runs.spec import FrozenThreshold, ModelSpec

CHECKPOINT_NAMES = ("best.ckpt", "last.ckpt")  # a run's checkpoint for inference: best, else last
SPEC_KEY = "model_spec"  # where a checkpoint holds its spec


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (nothing is created by naming them)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def spec(self) -> Path:
        return self.path / "model.json"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def throughput_csv(self) -> Path:
        return self.path / "throughput.csv"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def tracking(self) -> Path:
        return self.path / "tracking.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def evaluation(self) -> Path:
        """metrics.json of the evaluation on the run's own test split."""
        return self.path / "metrics.json"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def robustness(self) -> Path:
        return self.path / "robustness"

    def evaluation_dir(self, data: str | Path | None, split: str) -> Path:
        """Where an evaluation goes: the run itself for its own test split, else a sub-folder."""
        if data is None and split == "test":
            return self.path
        name = f"run-{split}" if data is None else f"{Path(str(data)).name or 'data'}-{split}"
        return self.path / "evaluations" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)

    def other_evaluations(self) -> list[Path]:
        """metrics.json of every evaluation on other data or splits."""
        return sorted((self.path / "evaluations").glob("*/metrics.json"))

    def inference_checkpoint(self) -> Path:
        """The checkpoint to predict with: best, else last."""
        for name in CHECKPOINT_NAMES:
            candidate = self.checkpoints / name
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"run directory {self.path} has no checkpoints/best.ckpt or last.ckpt"
        )

    def is_run(self) -> bool:
        return self.config.is_file()


def run_of_checkpoint(checkpoint: Path) -> RunDir | None:
    """The run directory holding ``checkpoint`` (``RUN/checkpoints/x.ckpt``), if it is one."""
    run = RunDir(checkpoint.resolve().parent.parent)
    return run if checkpoint.resolve().parent.name == "checkpoints" and run.is_run() else None


def resolve_run(ref: str | Path, runs_dir: str | Path = "runs") -> RunDir:
    """A run directory from a path, a name under ``runs_dir``, or ``latest``."""
    runs_dir = Path(runs_dir)
    if str(ref) == "latest":
        candidates = [RunDir(p.parent.parent) for p in runs_dir.glob("*/checkpoints/last.ckpt")]
        if not candidates:
            raise CheckpointError(f"resume=latest: no run with a last.ckpt under {runs_dir}/")
        return max(candidates, key=lambda r: r.last.stat().st_mtime)
    path = Path(ref)
    if not path.is_dir() and (runs_dir / path).is_dir():
        path = runs_dir / path
    if not path.is_dir():
        raise CheckpointError(f"run directory {ref} does not exist (also looked in {runs_dir}/)")
    run = RunDir(path)
    if not run.is_run():
        raise CheckpointError(f"{path} is not a realfake run directory: it has no config.yaml")
    return run


def resolve_checkpoint(ref: str | Path) -> tuple[Path, RunDir | None]:
    """A checkpoint file (from a path to one, or a run directory's best else last) and its run."""
    path = Path(ref)
    if path.is_dir():
        run = RunDir(path)
        return run.inference_checkpoint(), run if run.is_run() else None
    if not path.is_file():
        raise CheckpointError(f"{path} is neither a checkpoint file nor a run directory")
    return path, run_of_checkpoint(path)


# --- small files -------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (realfake.atomic): never half a file."""
    text = json.dumps(_jsonable(data), indent=2) + "\n"
    write_text(path, text)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN (an undefined metric) becomes null so any JSON reader accepts it."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy and torch scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# --- checkpoints ----------------------------------------------------------------------------


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A realfake checkpoint read with ``weights_only=True`` onto the CPU.

    Only tensors and plain containers are unpickled: a file made by someone else cannot run
    code here, whatever it holds. Any file torch cannot read that way (text, an empty or
    truncated file, another pickle, a zip of something else) is a CheckpointError naming it;
    PyTorch's advice to retry with ``weights_only=False`` is never passed on.
    """
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():
            # A foreign pickle also draws a warning about its pickle protocol: noise here.
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # torch.load fails in many types: KeyError, UnpicklingError, ...
        raise CheckpointError(
            f"{path} is not a realfake checkpoint or is damaged (for instance truncated): "
            f"{_unreadable_reason(path, exc)}"
        ) from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"{path} is not a realfake checkpoint: it holds a {type(ckpt).__name__}, not a "
            "dict with a 'state_dict'"
        )
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} holds no 'state_dict'; it was not written by realfake")
    return ckpt


def _unreadable_reason(path: Path, exc: Exception) -> str:
    """Why torch.load failed, in a few words, without PyTorch's weights_only=False advice."""
    text = " ".join(str(exc).split())
    if path.stat().st_size == 0:
        reason = "the file is empty"
    elif text.startswith("Weights only load failed"):
        # PyTorch's text: advice (dropped), then what it refused, then a link to its docs.
        detail = re.split(r"trusted source\.|WeightsUnpickler error:", text)[-1]
        detail = re.split(r" ?Check the documentation| was not an allowed global", detail)[0]
        detail = detail.strip().rstrip(".")
        reason = "it holds data other than tensors and plain containers"
        reason += f" ({detail})" if detail else ""
    elif isinstance(exc, RuntimeError):
        detail = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", text)
        reason = f"torch.load: {detail.split('. ')[0].rstrip('.')}"
    else:
        first = text.split(". ")[0].rstrip(".")
        reason = f"it is not a file written by torch.save ({type(exc).__name__}"
        reason += f": {first})" if first else ")"
    if "weights_only" in reason.lower():  # never suggest unpickling arbitrary code
        reason = f"torch.load failed with {type(exc).__name__}"
    return reason if len(reason) <= 200 else reason[:197] + "..."


def checkpoint_spec(ckpt: dict[str, Any], where: Path | str) -> ModelSpec:
    """The model spec a checkpoint holds (or rebuilt from the hyper-parameters of older ones)."""
    if SPEC_KEY in ckpt:
        return ModelSpec.from_dict(ckpt[SPEC_KEY], f"{where} (model_spec)")
    hp = ckpt.get("hyper_parameters") or {}
    if not isinstance(hp, dict) or "classes" not in hp or "config" not in hp:
        raise CheckpointError(
            f"{where} has no model spec and no class list/config in its hyper-parameters; it "
            "was not written by realfake train"
        )
    try:  # checkpoints written before the spec existed: the same facts, spread out
        return ModelSpec.from_training_config(hp["config"], hp["classes"], hp["mean"], hp["std"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{where}: incomplete hyper-parameters ({exc})") from None


def model_state(ckpt: dict[str, Any], prefix: str = "model.") -> dict[str, Any]:
    """The network's own weights from a Lightning state dict (keys without ``prefix``)."""
    return {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_run_spec(run: RunDir) -> ModelSpec | None:
    """The run's model.json, if written."""
    data = read_json(run.spec)
    return ModelSpec.from_dict(data, str(run.spec)) if data else None


def write_run_spec(run: RunDir, spec: ModelSpec) -> None:
    """Write model.json; a spec without a threshold keeps the run's frozen one if still valid.

    A threshold frozen by ``realfake evaluate`` belongs to the weights whose sha256 it records:
    while the run's inference checkpoint is still those weights (training rewrites model.json
    when it starts or resumes), dropping it would silently change every later decision.
    """
    if spec.threshold is None:
        kept = _threshold_of_current_weights(run)
        if kept is not None:
            spec = spec.with_threshold(kept)
    write_json(run.spec, spec.to_dict())


def _threshold_of_current_weights(run: RunDir) -> FrozenThreshold | None:
    """The frozen threshold in model.json if it belongs to the run's inference checkpoint."""
    try:
        old = read_run_spec(run)
        checkpoint = run.inference_checkpoint()
    except CheckpointError:  # no readable model.json or no checkpoint: nothing to keep
        return None
    if old is None or old.threshold is None:
        return None
    return old.threshold if file_sha256(checkpoint) == old.threshold.checkpoint_sha256 else None
