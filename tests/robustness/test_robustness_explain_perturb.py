"""Grad-CAM maps for each model family, overlays on disk, and perturbed copies of data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from robustness_samples import copy_tree, embedded_images

from realfake.cli import main
from realfake.data.perturbations import parse_perturbation
from realfake.explain.gradcam import gradcam
from realfake.models import build_model


@pytest.mark.parametrize("name", ["fastnet", "resnet18", "vgg11"])
def test_gradcam_maps_have_the_image_shape_and_vary(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=2, image_size=32).train()
    images = torch.randn(3, 3, 32, 32)
    maps = gradcam(model, images)
    assert maps.shape == (3, 32, 32) and maps.dtype == torch.float32
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert all(float(m.std()) > 0.01 for m in maps), "a map is constant"
    assert model.training  # the model's mode is restored
    assert all(p.grad is None for p in model.parameters())  # no gradients left behind
    big = gradcam(model, images, target_class=1, size=(128, 128))
    assert big.shape == (3, 128, 128)


def test_explain_writes_named_overlays(tiny_run: Path, tmp_path: Path) -> None:
    folder = copy_tree({p.name: p for p in embedded_images("test", "FAKE", 3)}, tmp_path / "in")
    out = tmp_path / "out"
    assert main(["explain", str(tiny_run), str(folder), "--out", str(out), "--size", "64"]) == 0
    written = sorted(out.glob("*.png"))
    assert len(written) == 3
    for path in written:
        assert path.stem.split("_")[-2] in {"FAKE", "REAL"}  # <stem>_<class>_<probability>
        assert 0.5 <= float(path.stem.split("_")[-1]) <= 1.0
        with Image.open(path) as im:
            assert im.size == (2 * 64 + 4, 64 + 22)


def test_explain_keeps_every_overlay_when_names_collide(tiny_run: Path, tmp_path: Path, capsys):
    # The same image four times under names that differ only in characters a file name loses:
    # same class and probability, so the same natural overlay name for all four.
    image = embedded_images("test", "FAKE", 1)[0]
    folder = copy_tree({n: image for n in ("a b.jpg", "a_b.jpg", "a?b.jpg", "a:b.jpg")},
                       tmp_path / "in")  # fmt: skip
    out = tmp_path / "out"
    assert main(["explain", str(tiny_run), str(folder), "--out", str(out), "--size", "32"]) == 0
    printed = capsys.readouterr().out
    assert len(list(out.glob("*.png"))) == 4  # one overlay per image, none overwritten
    assert "wrote 4 overlays" in printed and "3 overlays got a suffix" in printed


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    files = {f"train/FAKE/{p.name}": p for p in embedded_images("train", "FAKE", 2)}
    files |= {f"test/REAL/{p.name}": p for p in embedded_images("test", "REAL", 2)}
    root = copy_tree(files, tmp_path / "src")
    (root / "README.txt").write_text("not an image")
    return root


def _pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())


@pytest.mark.parametrize(("spec", "suffix"), [("jpeg:50", ".jpg"), ("blur:1", ".png")])
def test_perturb_writes_the_same_layout(
    small_tree: Path, tmp_path: Path, spec: str, suffix: str
) -> None:
    dst = tmp_path / "dst"
    assert main(["data", "perturb", str(small_tree), str(dst), "--perturbation", spec]) == 0
    sources = sorted(p.relative_to(small_tree) for p in small_tree.rglob("*.jpg"))
    written = sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file())
    assert written == [p.with_suffix(suffix) for p in sources]  # README.txt not copied
    perturbation = parse_perturbation(spec)
    for rel in sources:
        original = _pixels(small_tree / rel).unsqueeze(0)
        assert torch.equal(_pixels(dst / rel.with_suffix(suffix)), perturbation(original)[0])


def test_perturb_refuses_a_non_empty_destination(
    small_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "perturb", str(small_tree), str(small_tree), "-p", "noise:0.05"]) == 2
    assert "not empty" in capsys.readouterr().err
