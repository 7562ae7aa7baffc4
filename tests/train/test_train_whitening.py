"""A run with fastnet's patch-whitening stem: fitted to its own training images, saved, served."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realfake.data.config import DataConfig
from realfake.export import export_onnx
from realfake.inference import OnnxPredictor, Predictor
from realfake.models import build_model
from realfake.models.layers import PatchWhitening
from realfake.runs import load_checkpoint
from realfake.train import compose, train
from realfake.train.datamodule import ImageDataModule
from realfake.train.run import fit_data_dependent


@pytest.mark.slow  # a training run of its own (~20 s); the layer's own tests stay fast
def test_whitened_run_fits_its_stem_and_its_predictor_agrees(tmp_path, tiny_overrides) -> None:
    overrides = [*tiny_overrides, "model.options.whiten=true", f"runs_dir={tmp_path}", "name=w"]
    result = train(compose(overrides))
    saved = load_checkpoint(result.last_checkpoint)["state_dict"]
    weight = next(v for k, v in saved.items() if k.endswith("prep.0.weight"))
    # The saved filters are the whitening of this run's training images, not the unfitted
    # identity, and training left them as fitted.
    data = ImageDataModule(DataConfig(), seed=0)
    fresh = build_model("fastnet", 2, whiten=True)
    fit_data_dependent(fresh, data)
    assert torch.allclose(weight, fresh.prep[0].weight, atol=1e-6)
    assert not torch.allclose(weight, PatchWhitening(3).weight)
    # The predictor rebuilds the stem from the run alone and reproduces the test accuracy.
    predictor = Predictor.load(result.run_dir)
    test = data.test_split
    probs = predictor.probabilities(test.images)
    accuracy = float((probs.argmax(1) == test.labels.numpy()).mean())
    assert np.isclose(accuracy, result.metrics["test_acc"], atol=1e-6)
    # The fitted filters travel in the ONNX file too: ONNX Runtime gives the same probabilities.
    onnx = OnnxPredictor.load(export_onnx(predictor, tmp_path / "w.onnx"))
    assert np.abs(onnx.probabilities(test.images[:64]) - probs[:64]).max() <= 1e-4
