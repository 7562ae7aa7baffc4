"""A tiny native-resolution run: trained on random crops of images of two sizes, its test step
scores each image by the tile rule, so its figures are its predictor's and evaluate's."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from realfake.data.ragged import RaggedImages
from realfake.inference import Predictor
from realfake.inference.splits import eval_images


class StepOutputs(L.Callback):
    """Keeps the per-image probabilities every test step returned, in order."""

    def __init__(self) -> None:
        self.probs: list[torch.Tensor] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.probs.append(outputs.detach().cpu())


def _images(root: Path) -> Path:
    """train/ and test/ of FAKE and REAL PNGs of 48 and 80 px; FAKE rows alternate in brightness."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for cls in ("FAKE", "REAL"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                side = (48, 80)[i % 2]
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                if cls == "FAKE":
                    pixels[::2] //= 2  # a pixel-level trace that any crop carries
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root


@pytest.mark.slow  # a real (tiny) training, then evaluate
def test_a_native_runs_test_step_is_its_predictors_tile_rule(tmp_path):
    from realfake.evaluate.evaluation import evaluate
    from realfake.train import compose, train

    root = _images(tmp_path / "data")
    outputs = StepOutputs()
    overrides = [
        f"data.source={root}",
        "data.native=true",
        "data.image_size=16",
        "data.tiles=4",
        "data.augment.crop_padding=0",
        # fastnet's patch whitening is fitted to the crops it trains on (images of two sizes
        # could not be stacked whole).
        "model.options.whiten=true",
        "data.batch_size=8",
        "data.eval_batch_size=3",  # batches that mix 48- and 80-px images: lists
        "data.val_fraction=0.25",
        "trainer.max_epochs=2",
        "logging.mlflow=false",
        "logging.progress=none",
        f"runs_dir={tmp_path / 'runs'}",
        "name=native",
    ]
    result = train(compose(overrides), callbacks=[outputs])
    run = result.run_dir
    spec = json.loads((run / "model.json").read_text())
    assert spec["image_size"] == 16 and spec["tiles"] == 4
    predictor = Predictor.load(run)
    assert predictor.config["data"]["native"] is True  # the run says how it was trained

    test = eval_images(predictor, None, "test").split
    assert isinstance(test.images, RaggedImages)  # the images at their own 48 and 80 px
    assert sorted({im.shape[-1] for im in test.images}) == [48, 80]
    stepped = torch.cat(outputs.probs).double().numpy()
    expected = predictor.probabilities(test.images)
    assert stepped.shape == expected.shape == (8, 2)
    assert np.abs(stepped - expected).max() <= 1e-5
    # The files themselves, as predict reads them: the same probabilities.
    files = [root / name for name in test.names]
    assert np.abs(predictor.probabilities(files) - stepped).max() <= 1e-5
    # And evaluate's accuracy is the run's test accuracy, on the run's split and on --data.
    quick = {"n_resamples": 0, "figures": False, "report": False, "track": False}
    own = evaluate(run, **quick)
    assert own.metrics["accuracy"] == pytest.approx(result.metrics["test_acc"])
    given = evaluate(run, data=root, split="test", out=tmp_path / "given", **quick)
    assert given.metrics["accuracy"] == pytest.approx(result.metrics["test_acc"])
