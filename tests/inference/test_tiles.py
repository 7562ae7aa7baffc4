"""Native resolution: images scored as tiles of the network's size, never resized."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from realfake.inference import Predictor, Scorer
from realfake.inference.table import prediction_table


def test_tiles_follow_the_grid_rule_by_hand(tiled):
    image = torch.randint(0, 256, (3, 100, 70), dtype=torch.uint8)
    tiles = tiled.tiles(image)
    # 100×70 would take 4×3 tiles of 32 px; 4 allowed: a 2×2 grid spread from corner to corner
    # (rows at y 0 and 100-32 = 68, columns at x 0 and 70-32 = 38).
    assert tiles.shape == (4, 3, 32, 32)
    for tile, (y, x) in zip(tiles, [(0, 0), (0, 38), (68, 0), (68, 38)], strict=True):
        assert torch.equal(tile, image[:, y : y + 32, x : x + 32])
    # 64×64 fits 2×2 exactly: the four quadrants, every pixel once.
    square = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    quads = [square[:, y : y + 32, x : x + 32] for y in (0, 32) for x in (0, 32)]
    assert torch.equal(tiled.tiles(square), torch.stack(quads))
    # Smaller than a tile: the one place this mode resamples, to 32×32 by the spec's policy.
    assert tiled.tiles(torch.zeros(3, 20, 40, dtype=torch.uint8)).shape == (1, 3, 32, 32)


def test_an_image_scores_as_the_mean_of_its_tiles_and_max_takes_the_most_positive(tiled):
    square = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    per_tile = tiled.probabilities(tiled.tiles(square))
    assert np.allclose(tiled.probabilities([square])[0], per_tile.mean(0))
    maxed = Predictor(tiled.model, replace(tiled.spec, tile_aggregate="max"))
    assert np.allclose(maxed.probabilities([square])[0], per_tile[per_tile[:, 0].argmax()])
    # Not the resized image: 64×64 brought to 32×32 scores otherwise.
    resized = Predictor(tiled.model, replace(tiled.spec, tiles=0))
    assert not np.allclose(resized.probabilities([square])[0], per_tile.mean(0))


def test_predict_reads_files_at_their_own_size(tiled, tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (100, 70, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "large.png")
    Image.fromarray(pixels[:20, :20]).save(tmp_path / "small.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    scorer = Scorer.build(tiled)
    table = prediction_table(scorer, tmp_path).table.set_index("filename")
    native = torch.from_numpy(pixels.transpose(2, 0, 1).copy())
    expected = tiled.probabilities(tiled.tiles(native)).mean(0)
    assert table.loc["large.png", "prob_FAKE"] == pytest.approx(expected[0], abs=1e-6)
    assert table.loc["small.png", "error"] == ""
    assert table.loc["broken.png", "error"] != "" and table.loc["broken.png", "label"] == ""


@pytest.mark.slow  # an ONNX export
def test_the_exported_graph_tiles_alike(tiled, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from realfake.export import export_onnx
    from realfake.inference import OnnxPredictor

    onnx = OnnxPredictor.load(export_onnx(tiled, tmp_path / "tiled.onnx"))
    assert onnx.spec.tiles == 4  # the input rule travels with the graph
    image = torch.randint(0, 256, (3, 100, 70), dtype=torch.uint8)
    assert np.abs(onnx.probabilities([image]) - tiled.probabilities([image])).max() <= 1e-4


def test_tiled_features_of_images_scored_together_are_each_images_own(tiled):
    """The unfamiliar-image check reads one feature vector per image, the mean over its tiles,
    though tiles of several images share forward passes."""
    from realfake.inference.verdict import PENULTIMATE

    generator = torch.Generator().manual_seed(1)
    images = [
        torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=generator),  # 4 tiles
        torch.randint(0, 256, (3, 20, 40), dtype=torch.uint8, generator=generator),  # 1, resized
        torch.randint(0, 256, (3, 100, 70), dtype=torch.uint8, generator=generator),  # 4 tiles
    ]
    scorer = Scorer.build(tiled, batch_size=5)  # a batch boundary falls inside the third image
    layers = [PENULTIMATE, "stage 1"]
    together = scorer.features(images, layers)
    for i, image in enumerate(images):
        alone = scorer.features([image], layers)
        by_tile = scorer.features(tiled.tiles(image), layers)  # each tile as its own image
        for layer in layers:
            assert together[layer].shape[0] == len(images)
            assert np.allclose(together[layer][i], alone[layer][0], atol=1e-5)
            assert np.allclose(together[layer][i], by_tile[layer].mean(0), atol=1e-5)
    assert not np.allclose(together[PENULTIMATE][0], together[PENULTIMATE][2], atol=1e-3)
