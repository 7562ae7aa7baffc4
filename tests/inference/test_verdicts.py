"""UNSURE verdicts: the band around the threshold and the distance to the training features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from realfake.inference import Scorer
from realfake.inference.verdict import (
    UNSURE,
    SizeRange,
    choose_band,
    error_upper_bound,
    fit_feature_distance,
)


def test_the_error_bound_is_clopper_pearsons():
    # No error in n answers: the bound solves (1 - p)^n = 1 - confidence.
    assert error_upper_bound(np.array([0]), np.array([80]), 0.95)[0] == pytest.approx(
        1 - 0.05 ** (1 / 80)
    )
    assert error_upper_bound(np.array([5]), np.array([5]), 0.95)[0] == 1.0


def test_the_band_answers_the_confident_images_and_holds_back_the_coin_flips():
    rng = np.random.default_rng(0)
    # 80 confident images, all right; 20 within 0.1 of the threshold 0.5, half of them wrong.
    confident = np.concatenate([rng.uniform(0.85, 1.0, 40), rng.uniform(0.0, 0.15, 40)])
    close = rng.uniform(0.41, 0.59, 20)
    p_fake = np.concatenate([confident, close])
    decided = np.where(p_fake >= 0.5, 0, 1)  # FAKE = 0 is positive
    labels = decided.copy()
    labels[80::2] = 1 - labels[80::2]  # every other close image is wrong
    band = choose_band(labels, p_fake, positive=0, threshold=0.5, target_error=0.05)
    assert band is not None
    assert 0.09 <= band.margin <= 0.35  # between the coin flips and the confident images
    assert band.coverage == pytest.approx(0.8) and band.selective_accuracy == 1.0
    # A model wrong everywhere gets no band at all: nothing can be answered at 5% error.
    assert choose_band(1 - decided, p_fake, 0, 0.5) is None


def test_the_feature_distance_flags_what_lies_far_from_both_classes():
    rng = np.random.default_rng(1)
    train = np.concatenate([rng.normal(0, 1, (300, 8)), rng.normal(4, 1, (300, 8))])
    labels = np.repeat([0, 1], 300)
    val = np.concatenate([rng.normal(0, 1, (100, 8)), rng.normal(4, 1, (100, 8))])
    ood = fit_feature_distance(train, labels, val, "sha", "test", quantile=0.99)
    assert math.isfinite(ood.cutoff)
    assert (ood.distance(val) > ood.cutoff).mean() == pytest.approx(0.01, abs=0.011)
    far = rng.normal(20, 1, (50, 8))
    assert (ood.distance(far) > ood.cutoff).all()


@pytest.mark.slow
def test_unlike_images_are_unsure_and_every_surface_says_so(frozen, tiny_onnx, tmp_path):
    """The frozen run has a feature-distance reference (fitted when its threshold was frozen):
    flat and noisy pictures are UNSURE with that reason; test images mostly are not; predict
    and the scorer give the same verdicts."""
    from PIL import Image

    from realfake.cli import main

    run, result = frozen
    assert (run / "ood.npz").is_file()
    assert result.record["unsure"]["feature_distance"]["quantile"] == 0.99
    verdicts = result.metrics["verdicts"]
    assert verdicts["answered"] + verdicts["unsure"] == 200
    assert verdicts["coverage"] >= 0.8  # the run's own test images are mostly answered
    folder = tmp_path / "odd"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        Image.new("RGB", (32, 32), (40 * k, 255 - 40 * k, 128)).save(folder / f"flat{k}.png")
        noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(noise).save(folder / f"noise{k}.png")
    out = tmp_path / "odd.csv"
    assert main(["predict", str(run), str(folder), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    unsure = table[table["verdict"] == UNSURE]
    # Noise is far from anything the (barely trained) tiny model saw; most flat pictures too.
    assert set(unsure["filename"]) >= {f"noise{k}.png" for k in range(6)}
    assert len(unsure) >= 8, table[["filename", "verdict", "reason"]]
    assert unsure["reason"].str.startswith("unlike the images it was trained on").all()
    scorer = Scorer.open(run)
    decisions = scorer.predict(sorted(folder.iterdir()))
    assert [d.verdict for d in decisions] == table["verdict"].tolist()
    # The ONNX backend has no features: no such check, and it says why.
    onnx = Scorer.open(tiny_onnx)
    assert onnx.ood is None and "torch backend" in onnx.ood_why


@pytest.mark.slow
def test_predict_shows_provenance_beside_the_pixels_and_absence_proves_nothing(tiny_run, tmp_path):
    """A PNG declaring Stable Diffusion parameters is FAKE by declaration whatever the pixels
    say; the same pixels without metadata keep the pixel verdict."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from realfake.cli import main

    folder = tmp_path / "pngs"
    folder.mkdir()
    picture = Image.new("RGB", (32, 32), (120, 90, 60))
    info = PngInfo()
    info.add_text("parameters", "a photo of a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    picture.save(folder / "declared.png", pnginfo=info)
    picture.save(folder / "stripped.png")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), str(folder), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False).set_index("filename")
    declared, stripped = table.loc["declared.png"], table.loc["stripped.png"]
    assert declared["pixel_verdict"] == stripped["pixel_verdict"]  # the same pixels
    assert declared["verdict"] == "FAKE"
    assert "parameters" in declared["evidence"] or "Stable Diffusion" in declared["evidence"]
    assert stripped["verdict"] == stripped["pixel_verdict"]
    assert "absence proves nothing" in stripped["evidence"]


def test_a_size_far_from_the_training_images_is_unsure():
    sizes = SizeRange.of(np.array([[32, 32]] * 99 + [[40, 32]]))
    assert (sizes.side_lo, sizes.side_hi) == (32, 32)
    assert not sizes.unfamiliar(32, 32) and not sizes.unfamiliar(60, 60)  # within 2x
    assert sizes.unfamiliar(256, 256) and sizes.unfamiliar(8, 8)
    assert sizes.unfamiliar(200, 40)  # a banner: 5:1, far beyond the training aspect


@pytest.mark.slow
def test_predict_calls_a_photo_of_another_size_unsure(frozen, tmp_path):
    """The frozen run learnt from 32-px images: a 256-px picture, whatever its pixels, is
    UNSURE by its size, and says so; a 32-px copy of it is judged by its pixels."""
    from PIL import Image

    from realfake.cli import main

    run, _ = frozen
    spec = __import__("json").loads((run / "model.json").read_text())
    assert spec["threshold"]["train_side_lo"] == 32 == spec["threshold"]["train_side_hi"]
    folder = tmp_path / "sizes"
    folder.mkdir()
    rng = np.random.default_rng(3)
    picture = Image.fromarray(rng.integers(90, 160, (256, 256, 3), dtype=np.uint8))
    picture.save(folder / "large.png")
    picture.resize((32, 32)).save(folder / "small.png")
    out = tmp_path / "s.csv"
    assert main(["predict", str(run), str(folder), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False).set_index("filename")
    assert table.loc["large.png", "verdict"] == UNSURE
    assert "256×256 is far from their size" in table.loc["large.png", "reason"]
    assert "far from their size" not in table.loc["small.png", "reason"]
