"""A model that scores tiles is evaluated on labelled images at their own size (evaluate --data,
the cross-source study): a split of one size and a ragged one both go through the tile rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realfake.data.ragged import RaggedImages
from realfake.inference import Predictor, Scorer
from realfake.inference.splits import labelled_split
from realfake.runs import ModelSpec


@pytest.fixture(scope="module")
def tiled64() -> Predictor:
    """An untrained narrow fastnet scoring up to 16 native tiles of 64 px (as faces_native)."""
    spec = ModelSpec(
        model="fastnet", classes=("FAKE", "REAL"), image_size=64, resize="stretch",
        mean=(0.5, 0.45, 0.4), std=(0.25, 0.24, 0.26), flip_tta=True, positive_class="FAKE",
        tiles=16, model_options={"width": 8},
    )  # fmt: skip
    torch.manual_seed(0)
    return Predictor(spec.build_model().eval(), spec)


def _folder(root: Path, sides: list[int]) -> Path:
    rng = np.random.default_rng(len(sides))
    for cls in ("FAKE", "REAL"):
        (root / cls).mkdir(parents=True)
        for i, side in enumerate(sides):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


def _by_tiles(predictor: Predictor, images) -> np.ndarray:
    """Each image's tiles scored as a prepared batch, then averaged: the tile rule by hand."""
    return np.stack([predictor.probabilities(predictor.tiles(im)).mean(0) for im in images])


@pytest.mark.parametrize("sides", [[256, 256], [96, 256]], ids=["one-size", "ragged"])
def test_labelled_images_reach_the_scorer_at_their_own_size(tiled64, tmp_path, sides):
    root = _folder(tmp_path / "d", sides)
    found = labelled_split(root, tiled64, None)
    images = found.split.images
    if len(set(sides)) == 1:  # one size: one N×3×256×256 tensor, not S×S images
        assert isinstance(images, torch.Tensor) and images.shape == (4, 3, 256, 256)
    else:
        assert isinstance(images, RaggedImages)
        assert sorted(im.shape[-1] for im in images) == [96, 96, 256, 256]
    scored = Scorer.build(tiled64).score(images, sizes=found.split.sizes).probs
    assert np.allclose(scored, _by_tiles(tiled64, images), atol=1e-6)
    # As predict scores the files themselves.
    files = [root / name for name in found.split.names]
    assert np.allclose(scored, tiled64.probabilities(files), atol=1e-6)
    # Not the images squashed to 64 px.
    squashed = Predictor(tiled64.model, replace(tiled64.spec, tiles=0)).probabilities(files)
    assert not np.allclose(scored, squashed, atol=1e-4)


def test_a_cross_source_test_split_is_native_for_a_tiled_model(tiled64, tmp_path):
    from realfake.studies.cross_source import score_cell, test_split

    root = _folder(tmp_path / "d", [96, 256, 256, 96])
    overrides = [f"data.source={root}", "data.test_fraction=0.5", "data.image_size=32"]
    test = test_split(overrides, Scorer.build(tiled64))
    assert isinstance(test.images, RaggedImages) and len(test) == 4
    # Each at its own size (96 or 256 px), never the config's 32 px.
    assert [tuple(im.shape[1:]) for im in test.images] == [(h, w) for w, h in test.sizes.tolist()]
    cell = score_cell(Scorer.build(tiled64), test)
    expected = _by_tiles(tiled64, test.images)[:, 0]
    assert np.allclose(cell["p_positive"], expected, atol=1e-6)


def test_a_native_runs_cap_is_the_region_predict_and_evaluate_tile(tiled64, tmp_path):
    # A run trained at native resolution kept the central 128 px of larger images: prediction
    # and evaluation tile that region of a 320-px image, and both score the same pixels.
    capped = Predictor(tiled64.model, replace(tiled64.spec, native_max_side=128))
    root = _folder(tmp_path / "d", [320])
    file = root / "FAKE" / "0.png"
    whole = torch.from_numpy(np.asarray(Image.open(file)).transpose(2, 0, 1).copy())
    tiles = capped.tiles(whole)
    central = whole[:, 96:224, 96:224]
    assert torch.equal(tiles, tiled64.tiles(central))  # a 2×2 grid inside the central region
    assert not torch.equal(tiles, tiled64.tiles(whole)[: len(tiles)])
    found = labelled_split(root, capped, None)
    scored = Scorer.build(capped).score(found.split.images).probs
    files = [root / name for name in found.split.names]
    assert np.allclose(scored, capped.probabilities(files), atol=1e-6)
    # Whole images for a model without the cap (evaluated as predict reads them).
    found = labelled_split(root, tiled64, None)
    assert found.split.images.shape[-1] == 320


def test_explain_refuses_a_tiled_model_rather_than_explain_another_decision(tiled64, tmp_path):
    from realfake.errors import DataError
    from realfake.explain.explain import explain

    root = _folder(tmp_path / "d", [256])
    with pytest.raises(DataError, match=r"tiles of each image at its own size.*realfake predict"):
        explain(Scorer.build(tiled64), root, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_robustness_commands_say_what_to_do_with_images_of_several_sizes(tiled64, tmp_path):
    from realfake.errors import DataError
    from realfake.robustness.grid import robustness_report
    from realfake.robustness.shortcuts import audit_shortcuts

    root = _folder(tmp_path / "d", [96, 256])
    scorer = Scorer.build(tiled64)
    with pytest.raises(DataError, match=r"2 sizes \(96 to 256 px a side\).*--data PATH"):
        robustness_report(scorer, data=root, perturbations=["jpeg:50"])
    with pytest.raises(DataError, match=r"the shortcut audit .* 2 sizes"):
        audit_shortcuts(scorer, data=root)
    # One size (faces at their own 256 px): the grid runs on the native images, by tiles.
    one = _folder(tmp_path / "one", [256, 256])
    report = robustness_report(scorer, data=one, perturbations=["noise:0.2"])
    assert [row.perturbation for row in report.rows] == ["clean", "noise:0.2"]
    assert all(row.n == 4 for row in report.rows)
