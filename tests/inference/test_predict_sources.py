"""`realfake predict --source-level N`: each image's source from its folder, counted per source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realfake.errors import DataError
from realfake.inference import Predictor, Scorer
from realfake.inference.summary import write_summary
from realfake.inference.table import prediction_table, verdicts_by_source
from realfake.runs import ModelSpec


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    spec = ModelSpec(
        model="fastnet", classes=("FAKE", "REAL"), image_size=32, resize="stretch",
        mean=(0.5,) * 3, std=(0.25,) * 3, flip_tta=False, positive_class="FAKE",
        model_options={"width": 8},
    )  # fmt: skip
    torch.manual_seed(0)
    return Scorer.build(Predictor(spec.build_model().eval(), spec))


def _generators(root: Path) -> Path:
    """root/<generator>/<n>.png: 3 images of sdxl, 2 of midjourney, and one broken file."""
    rng = np.random.default_rng(0)
    for source, n in (("sdxl", 3), ("midjourney", 2)):
        (root / source).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / source / f"{i}.png")
    (root / "sdxl" / "broken.png").write_bytes(b"not a png")
    return root


def test_each_image_gets_its_folders_source_and_the_counts_add_up(scorer, tmp_path):
    root = _generators(tmp_path / "gen")
    table = prediction_table(scorer, root, source_level=0).table
    assert list(table.columns[:2]) == ["filename", "source"]
    assert dict(zip(table["filename"], table["source"], strict=True)) == {
        "midjourney/0.png": "midjourney",
        "midjourney/1.png": "midjourney",
        "sdxl/0.png": "sdxl",
        "sdxl/1.png": "sdxl",
        "sdxl/2.png": "sdxl",
        "sdxl/broken.png": "sdxl",
    }
    counts = verdicts_by_source(table)
    assert counts.loc["sdxl"].sum() == 4 and counts.loc["midjourney"].sum() == 2
    assert counts.loc["sdxl", "unreadable"] == 1 and counts.loc["midjourney", "unreadable"] == 0
    page = write_summary(table, scorer, root, tmp_path / "summary.html").read_text()
    assert "By source" in page and "midjourney" in page
    # Without the option nothing changes: no source column.
    assert "source" not in prediction_table(scorer, root).table.columns


def test_an_image_outside_a_source_folder_is_named_before_scoring(scorer, tmp_path):
    root = _generators(tmp_path / "gen")
    Image.new("RGB", (40, 40)).save(root / "loose.png")
    with pytest.raises(DataError, match=r"loose\.png .* no folder at level 0"):
        prediction_table(scorer, root, source_level=0)
