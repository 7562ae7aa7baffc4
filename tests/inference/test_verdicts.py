"""UNSURE verdicts: the band around the threshold and the distance to the training features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from realfake.inference import Predictor, Scorer
from realfake.inference.verdict import (
    OOD_FILE,
    PENULTIMATE,
    UNSURE,
    FeatureDistance,
    SizeRange,
    choose_band,
    error_upper_bound,
    fit_feature_distance,
    verdicts,
)
from realfake.runs import ModelSpec, RunDir


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
    ood = fit_feature_distance(
        {PENULTIMATE: train}, labels, {PENULTIMATE: val}, "sha", "test", quantile=0.99
    )
    assert math.isfinite(ood.cutoff)
    flagged = ood.score(ood.distances({PENULTIMATE: val})) > ood.cutoff
    assert flagged.mean() == pytest.approx(0.01, abs=0.011)
    far = rng.normal(20, 1, (50, 8))
    assert (ood.score(ood.distances({PENULTIMATE: far})) > ood.cutoff).all()


def _layered(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Features of n images of two classes at three stages and the penultimate layer: the
    stages' statistics are alike for both classes, the penultimate features tell them apart;
    ``shift`` moves the first stage's statistics only."""
    half = n // 2
    last = np.concatenate([rng.normal(0, 1, (half, 6)), rng.normal(5, 1, (n - half, 6))])
    return {
        "stage 1": rng.normal(shift, 1, (n, 10)),
        "stage 2": rng.normal(0, 1, (n, 12)),
        "stage 3": rng.normal(0, 1, (n, 16)),
        PENULTIMATE: last,
    }


def test_an_image_unlike_the_training_images_in_its_first_stage_only_is_unsure():
    """Low-level statistics far from the training images' while the classifier's own features
    look ordinary (faces shrunk to 32 px, say): the last layer alone would answer, the
    multi-layer score says UNSURE and names the stage."""
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 400)
    train, val = _layered(rng, 800), _layered(rng, 400)
    shifted = _layered(rng, 100, shift=4.0)
    ood = fit_feature_distance(train, labels, val, "sha", "test")
    assert ood.layers == ("stage 1", "stage 2", "stage 3", PENULTIMATE)
    # Validation images: about 1% beyond the cut-off, by construction.
    val_flags = ood.score(ood.distances(val)) > ood.cutoff
    assert val_flags.mean() == pytest.approx(0.01, abs=0.011)
    assert (ood.score(ood.distances(shifted)) > ood.cutoff).mean() >= 0.95
    last_only = fit_feature_distance(
        {PENULTIMATE: train[PENULTIMATE]}, labels, {PENULTIMATE: val[PENULTIMATE]}, "sha", "t"
    )
    alone = last_only.score(last_only.distances({PENULTIMATE: shifted[PENULTIMATE]}))
    assert (alone > last_only.cutoff).mean() <= 0.05  # the last layer sees nothing unusual

    probs = np.tile([[0.9, 0.1]], (len(labels[:100]), 1))
    said = verdicts(
        probs, ["FAKE", "REAL"], np.zeros(100, int), None, None, None, None,
        ood.distances(shifted), ood,
    )  # fmt: skip
    unsure = [reason for verdict, reason in said if verdict == UNSURE]
    assert len(unsure) >= 95
    assert all(r.startswith("unlike the images it was trained on") for r in unsure)
    assert all("its low-level statistics, stage 1 of 3" in r for r in unsure), unsure[0]


def _predictor(tmp_path, sha_of: bytes = b"weights") -> Predictor:
    """An untrained fastnet whose run directory is ``tmp_path`` and whose checkpoint file is
    ``sha_of`` (the reference belongs to the SHA-256 of that file)."""
    import torch

    spec = ModelSpec(
        model="fastnet", classes=("FAKE", "REAL"), image_size=32, resize="stretch",
        mean=(0.5, 0.45, 0.4), std=(0.25, 0.24, 0.26), flip_tta=True, positive_class="FAKE",
    )  # fmt: skip
    checkpoint = tmp_path / "best.ckpt"
    checkpoint.write_bytes(sha_of)
    torch.manual_seed(0)
    return Predictor(spec.build_model().eval(), spec, checkpoint, RunDir(tmp_path))


def _noise(n: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)


def test_a_reference_fitted_through_the_scorer_flags_flat_pictures_and_names_a_stage(tmp_path):
    """Fitted as ``evaluate --freeze-threshold`` fits it (the scorer's features at every stage,
    flip TTA averaged): flat pictures are UNSURE, most images like the fitted ones are not,
    and the reference saved to the run comes back with the same verdicts."""
    import torch

    scorer = Scorer.build(_predictor(tmp_path))
    train, val = _noise(200, 0), _noise(100, 1)
    labels = np.repeat([0, 1], 100)
    features = scorer.features(train)
    assert list(features) == ["stage 1", "stage 2", "stage 3", "stage 4", PENULTIMATE]
    ood = fit_feature_distance(features, labels, scorer.features(val), scorer.sha256, "test")
    ood.save(tmp_path / OOD_FILE)
    reopened = Scorer.build(scorer.predictor)
    assert reopened.ood is not None and reopened.ood.layers == ood.layers
    flat = torch.stack([torch.full((3, 32, 32), v, dtype=torch.uint8) for v in (30, 128, 220)])
    images = torch.cat([_noise(40, 2), flat])
    scored = reopened.score(images)
    assert scored.distances is not None and scored.distances.shape == (43, 5)
    said = reopened.decisions(scored.probs, scored.distances)
    assert all(d.verdict == UNSURE and "(most of all " in d.reason for d in said[-3:])
    assert sum(d.verdict == UNSURE for d in said[:40]) <= 4


def test_a_single_layer_reference_of_before_still_decides_as_it_did(tmp_path):
    """An ood.npz written before the multi-layer score (the penultimate features' means,
    precision and raw-distance cut-off) loads, flags the same images as its raw cut-off did,
    and a reference of other weights is ignored, saying so."""
    predictor = _predictor(tmp_path)
    images = _noise(30, 5)
    penultimate = Scorer.build(predictor).features(images, [PENULTIMATE])[PENULTIMATE]
    rng = np.random.default_rng(4)
    means, precision = rng.normal(0, 1, (2, 256)), np.eye(256) / 4
    raw = np.min([np.einsum("nd,de,ne->n", penultimate - m, precision, penultimate - m)
                  for m in means], axis=0)  # fmt: skip
    cutoff = float(np.median(raw))  # splits these images: the test can tell
    with (tmp_path / OOD_FILE).open("wb") as fh:
        np.savez(
            fh, means=means, precision=precision, cutoff=cutoff, quantile=0.99,
            checkpoint_sha256=predictor.sha256, fitted_on="5000 training images of the run",
        )  # fmt: skip
    scorer = Scorer.build(predictor)
    assert scorer.ood is not None and scorer.ood.layers == (PENULTIMATE,)
    scored = scorer.score(images)
    said = scorer.decisions(scored.probs, scored.distances)
    assert [d.verdict == UNSURE for d in said] == (raw > cutoff).tolist()
    assert "(most of all" not in said[int(np.argmax(raw))].reason  # one layer: nothing to name
    other = FeatureDistance.load(tmp_path / OOD_FILE)
    from dataclasses import replace

    replace(other, checkpoint_sha256="0" * 64).save(tmp_path / OOD_FILE)
    ignored = Scorer.build(predictor)
    assert ignored.ood is None and ignored.ood_why == f"{OOD_FILE} belongs to other weights"


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
