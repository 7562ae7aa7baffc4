"""Shared fixtures: a per-session decode cache, and one tiny trained run shared by every test."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import lightning as L
import pytest

# The smallest run that still has a val split (threshold), a test split and two epochs (a
# learning curve): 2 epochs of 2 batches of 32 images. channels_last is left to its auto rule,
# as a user's run leaves it (a rule, not a timing: the run reproduces bit for bit).
TINY = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "data.batch_size=32",
    "logging.mlflow=false",
    "logging.progress=none",
]


def pytest_collection_modifyitems(config, items):
    """Every test that needs the session's trained run (``tiny_training``) is in the slow tier:
    training it, evaluating and exporting it cost more than the rest of the fast tier together,
    and `make test-fast` is the one-minute loop of unit tests."""
    for item in items:
        if "tiny_training" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """Point realfake's decode cache at a temporary folder shared by the whole session."""
    path = tmp_path_factory.mktemp("realfake-cache")
    old = os.environ.get("REALFAKE_CACHE")
    os.environ["REALFAKE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("REALFAKE_CACHE", None)
    else:
        os.environ["REALFAKE_CACHE"] = old


@pytest.fixture(autouse=True)
def _quiet_tracking(monkeypatch, tmp_path):
    """Keep MLflow stores that a test did not ask for out of the working directory."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """Config overrides of the smallest useful training run."""
    return list(TINY)


class ValAccSeen(L.Callback):
    """An extra callback as a sweep's pruner would pass one: sees every epoch's validation."""

    def __init__(self) -> None:
        self.val_acc: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.val_acc.append(float(trainer.callback_metrics["val/acc"]))


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory, data_cache):
    """The one training of the session: (TrainResult, the extra callback it ran with).

    It is tracked in its own MLflow store (``tiny_tracking_uri``). Tests read it and evaluate
    it; a test that changes the run works on a copy (``tiny_copy``).
    """
    from realfake.train import compose, train

    runs = tmp_path_factory.mktemp("runs")
    tracking = f"logging.tracking_uri=sqlite:///{runs / 'mlruns.db'}"
    overrides = [*TINY, "logging.mlflow=true", tracking, f"runs_dir={runs}", "name=tiny"]
    seen = ValAccSeen()
    result = train(compose(overrides), callbacks=[seen])
    return result, seen


@pytest.fixture(scope="session")
def tiny_tracking_uri(tiny_run) -> str:
    """The MLflow store the tiny run was tracked in."""
    return f"sqlite:///{tiny_run.parent / 'mlruns.db'}"


@pytest.fixture(scope="session")
def tiny_run(tiny_training) -> Path:
    """The run directory of the session's tiny fastnet run on the embedded CIFAKE mini set."""
    return tiny_training[0].run_dir


@pytest.fixture
def tiny_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run, for tests that write into a run directory."""
    return Path(shutil.copytree(tiny_run, tmp_path / "runs" / "tiny"))


@pytest.fixture(scope="session")
def evaluated(tiny_run):
    """``evaluate`` of the tiny run on its own test split (arg-max: nothing frozen), figures and
    report included."""
    from realfake.evaluate.evaluation import evaluate

    return evaluate(tiny_run, n_resamples=200)


@pytest.fixture(scope="session")
def frozen(tiny_run, evaluated, tmp_path_factory):
    """A copy of the tiny run with a threshold frozen for its weights, and that evaluation.

    Frozen the deliberate way (``evaluate(freeze=...)``), with the support rule lowered to the
    tiny run's 50 validation images of each class, then moved to the median P(FAKE) of the
    test images so that it decides many images unlike the arg-max (tests compare surfaces
    image by image).
    """
    from dataclasses import replace

    import numpy as np

    from realfake.evaluate.evaluation import evaluate
    from realfake.inference.splits import eval_images
    from realfake.runs import ModelSpec, RunDir
    from realfake.runs.rundir import write_run_spec

    run = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("frozen") / "tiny"))
    quick = {"n_resamples": 0, "figures": False, "report": False, "track": False}
    first = evaluate(run, freeze="youden", min_per_class=1, **quick)
    assert first.freeze is not None and first.freeze.frozen is not None
    images = eval_images(first.scorer.predictor, None, "test")
    probs = first.scorer.probabilities(images.split.images)
    median = float(np.median(probs[:, first.scorer.positive]))
    chosen = first.freeze.frozen
    # The band was fitted around the chosen value: it does not hold at another one.
    moved = replace(chosen, value=median, unsure_margin=None, target_error=None)
    spec = ModelSpec.from_dict(json.loads((run / "model.json").read_text()))
    write_run_spec(RunDir(run), spec.with_threshold(moved))
    return run, evaluate(run, **quick)


@pytest.fixture(scope="session")
def tiny_onnx(frozen, tmp_path_factory):
    """The frozen tiny run exported to ONNX with its flip TTA and frozen threshold (one export)."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from realfake.export import export_onnx

    return export_onnx(frozen[0], tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def robustness(tiny_run):
    """The robustness grid of the tiny run: JPEG, blur and noise, noise seed 1."""
    from realfake.robustness.grid import robustness_report

    return robustness_report(tiny_run, perturbations="jpeg:50,blur:1,noise:0.05", seed=1)


@pytest.fixture(scope="session")
def test_folder(tmp_path_factory) -> Path:
    """A copy of the embedded test split as <class>/<image>, plus two unreadable files."""
    from realfake.data.embedded import embedded_data_path

    root = tmp_path_factory.mktemp("folder") / "cifake-test"
    shutil.copytree(embedded_data_path() / "test", root)
    good = next((root / "FAKE").glob("*.jpg")).read_bytes()
    (root / "FAKE" / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    (root / "REAL" / "empty.jpg").write_bytes(b"")
    (root / "REAL" / "notes.txt").write_text("not an image")  # left out by its extension
    return root


@pytest.fixture(scope="session")
def tiled():
    """An untrained fastnet whose spec scores up to 4 native tiles of 32 px (no run needed)."""
    import torch

    from realfake.inference import Predictor
    from realfake.runs import ModelSpec

    spec = ModelSpec(
        model="fastnet", classes=("FAKE", "REAL"), image_size=32, resize="stretch",
        mean=(0.5, 0.45, 0.4), std=(0.25, 0.24, 0.26), flip_tta=True, positive_class="FAKE",
        tiles=4,
    )  # fmt: skip
    torch.manual_seed(0)
    return Predictor(spec.build_model().eval(), spec)
