"""Verdicts, evidence, native tiles, the model card and the examples, through the real app."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SETTINGS, png_declaring, wait_ready
from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from realfake.inference import Predictor, Scorer
from realfake.serve import create_app

VERDICT_FIELDS = ("label", "verdict", "reason", "pixel_verdict")


def _png(picture: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", **save)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, test_images) -> Path:
    """Test images, pictures unlike them (flat, noise) and files whose metadata speaks."""
    folder = tmp_path_factory.mktemp("mixed")
    for path in test_images["FAKE"][:2] + test_images["REAL"][:2]:
        shutil.copy(path, folder / path.name.replace(" ", "_"))
    rng = np.random.default_rng(0)
    for k in range(3):
        noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        (folder / f"noise{k}.png").write_bytes(_png(Image.fromarray(noise)))
    (folder / "flat.png").write_bytes(_png(Image.new("RGB", (32, 32), (40, 215, 128))))
    # Sizes the tiny run never saw: a 256 px square and a 5:1 banner.
    for name, (w, h) in {"large.png": (256, 256), "banner.png": (200, 40)}.items():
        pixels = rng.integers(90, 160, (h, w, 3), dtype=np.uint8)
        (folder / name).write_bytes(_png(Image.fromarray(pixels)))
    # The same pixels twice: once declaring Stable Diffusion parameters, once without.
    picture = Image.open(test_images["REAL"][3]).convert("RGB")
    info = PngInfo()
    info.add_text("parameters", "a photo of a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    (folder / "declared.png").write_bytes(_png(picture, pnginfo=info))
    (folder / "stripped.png").write_bytes(_png(picture))
    exif = Image.Exif()
    exif[0x0131] = "Adobe Firefly"  # EXIF Software: a generator's name
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90, exif=exif)
    (folder / "firefly.jpg").write_bytes(buffer.getvalue())
    return folder


def _post(client: TestClient, paths: list[Path]) -> list[dict]:
    """/predict of every file, SETTINGS.max_files at a time."""
    out = []
    for start in range(0, len(paths), SETTINGS.max_files):
        chunk = paths[start : start + SETTINGS.max_files]
        files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in chunk]
        answer = client.post("/predict", files=files)
        assert answer.status_code == 200, answer.text
        out += answer.json()["results"]
    return out


def test_the_service_gives_predicts_verdicts_for_the_same_files(
    client, frozen_run, mixed_folder, tmp_path
):
    """`realfake predict` and POST /predict on the same bytes: the same label, verdict, reason,
    pixel verdict and evidence; UNSURE for pictures unlike the training images (by their
    features, by their size) and FAKE by declaration where the metadata says so, in both."""
    from realfake.cli import main

    out = tmp_path / "p.csv"
    assert main(["predict", str(frozen_run), str(mixed_folder), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False).set_index("filename")
    paths = sorted(mixed_folder.iterdir())
    results = {r["file"]: r for r in _post(client, paths)}
    assert set(results) == set(table.index) == {p.name for p in paths}
    for name, row in table.iterrows():
        got = results[name]
        for field in VERDICT_FIELDS:
            assert got[field] == row[field], (name, field, got[field], row[field])
        assert " | ".join(got["evidence"]) == row["evidence"], name
        assert got["probabilities"]["FAKE"] == pytest.approx(row["prob_FAKE"], abs=1e-6)
    # What makes the comparison mean something: each kind of answer occurs.
    unlike = [r for r in results.values() if r["reason"].startswith("unlike the images")]
    assert {"noise0.png", "noise1.png", "noise2.png"} <= {r["file"] for r in unlike}
    assert all(r["verdict"] == r["pixel_verdict"] == "UNSURE" for r in unlike)
    for name in ("large.png", "banner.png"):
        assert "is far from their size" in results[name]["reason"], results[name]
    for name in ("declared.png", "firefly.jpg"):
        assert results[name]["verdict"] == "FAKE"
        assert results[name]["provenance"] == "declared-generated"
    assert "Firefly" in " ".join(results["firefly.jpg"]["evidence"])
    stripped = results["stripped.png"]
    assert stripped["provenance"] == "pixels" and stripped["verdict"] == stripped["pixel_verdict"]
    assert any("absence proves nothing" in line for line in stripped["evidence"])
    # The same pixels: the pixels' verdict is the same with and without the declaration.
    assert results["declared.png"]["pixel_verdict"] == stripped["pixel_verdict"]


def test_the_legacy_answer_keeps_its_two_keys(client, mixed_folder):
    path = mixed_folder / "declared.png"
    answer = client.post("/predict/", files={"data": (path.name, path.read_bytes(), "image/png")})
    assert answer.status_code == 200 and set(answer.json()) == {"prediction", "probs"}


@pytest.fixture(scope="module")
def tiled_client(tiled):
    with TestClient(create_app(Scorer.build(tiled), SETTINGS), raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c


def test_a_tiled_model_scores_uploads_at_their_own_size(tiled, tiled_client):
    """A 100×70 upload is scored by 4 tiles of its own pixels, as the predictor scores it, not
    squashed to 32 px; the pixel limit still refuses from the header."""
    from dataclasses import replace

    pixels = np.random.default_rng(1).integers(0, 256, (100, 70, 3), dtype=np.uint8)
    native = torch.from_numpy(pixels.transpose(2, 0, 1).copy())
    answer = tiled_client.post(
        "/predict", files=[("files", ("big.png", _png(Image.fromarray(pixels))))]
    )
    assert answer.status_code == 200, answer.text
    got = answer.json()["results"][0]["probabilities"]
    expected = tiled.probabilities([native])[0]
    assert [got["FAKE"], got["REAL"]] == pytest.approx(expected.tolist(), abs=1e-6)
    squashed = Predictor(tiled.model, replace(tiled.spec, tiles=0)).probabilities([native])[0]
    assert not np.allclose(expected, squashed, atol=1e-4)  # so the match above says something
    small = tiled_client.post(
        "/predict", files=[("files", ("s.png", _png(Image.new("RGB", (20, 20)))))]
    )
    assert small.status_code == 200 and small.json()["results"][0]["verdict"] in ("FAKE", "REAL")
    bomb = tiled_client.post("/predict", files=[("files", ("bomb.png", png_declaring(3000, 2000)))])
    assert bomb.status_code == 413 and "bomb.png" in bomb.json()["detail"]
    # Grad-CAM of one squashed image would not show what decided: 501, and the page is told.
    assert "tiles" in tiled_client.get("/metadata").json()["explain_unavailable"]
    explain = tiled_client.post(
        "/explain", files={"file": ("big.png", _png(Image.fromarray(pixels)))}
    )
    assert explain.status_code == 501 and "tiles" in explain.json()["detail"]


def test_a_model_without_a_run_has_a_card_that_says_what_it_lacks(tiled_client):
    card = tiled_client.get("/model-card").json()
    assert card["run"] is None and card["training_data"] is None and card["evaluation"] is None
    assert any("no run directory" in line for line in card["missing"])
    assert "4 tiles of 32×32 pixels" in card["model"]["input"]
    assert card["model"]["parameters"] > 0


@pytest.fixture(scope="module")
def recorded_run(frozen_run, tmp_path_factory) -> Path:
    """A copy of the frozen run whose records name data by server paths and hold per-source
    figures, as a run on two data sets has them."""
    import yaml

    run = Path(shutil.copytree(frozen_run, tmp_path_factory.mktemp("card") / "tiny"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["source"] = "/srv/secret/cifake-sample/train.tar"
    config["data"]["test_source"] = "/srv/secret/cifake-sample/test.tar"
    config["data"]["extra_sources"] = {"faces": {"source": "/srv/secret/faces-256.tar"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    record = json.loads((run / "metrics.json").read_text())
    record["metrics"]["per_source"] = {
        "cifake-sample": {"n": 150, "accuracy": 0.9, "roc_auc": 0.95, "recall": 0.92,
                          "specificity": 0.88, "positives": 75, "negatives": 75},
        "faces-256": {"n": 50, "accuracy": 0.52, "roc_auc": None, "recall": 0.5,
                      "specificity": None, "positives": 50, "negatives": 0},
    }  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(record))
    return run


def test_the_model_card_comes_from_the_runs_records(recorded_run):
    record = json.loads((recorded_run / "metrics.json").read_text())
    with TestClient(create_app(str(recorded_run), SETTINGS)) as c:
        wait_ready(c)
        answer = c.get("/model-card")
        meta = c.get("/metadata").json()
    assert answer.status_code == 200
    card = answer.json()
    assert "/srv" not in answer.text and str(recorded_run.parent) not in answer.text
    scorer = Scorer.open(recorded_run)
    model = card["model"]
    assert model["name"] == "fastnet" and model["file"] == "tiny/checkpoints/best.ckpt"
    assert model["parameters"] == sum(p.numel() for p in scorer.predictor.model.parameters())
    data = card["training_data"]
    assert data["train"] == ["train.tar", "faces-256.tar"] and data["test"] == ["test.tar"]
    assert data["images"] == {"train": 900, "val": 100, "test": 200}
    evaluation = card["evaluation"]
    assert evaluation["accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    assert evaluation["roc_auc"] == pytest.approx(record["metrics"]["roc_auc"])
    assert evaluation["same_weights"] is True
    assert [
        (s["source"], s["images"], s["accuracy"], s["roc_auc"]) for s in evaluation["per_source"]
    ] == [
        ("cifake-sample", 150, 0.9, 0.95),
        ("faces-256", 50, 0.52, None),
    ]
    assert card["decision_rule"] == meta["rule"]
    assert f"{scorer.rule.threshold:.3f}" in card["rule_in_words"]
    assert "UNSURE" in card["unsure"]["feature_distance"]  # the frozen run has a reference
    assert "short side 32 px" in card["unsure"]["size"]  # and its training images' sizes
    limits = " ".join(card["limits"])
    assert "32×32-pixel images of train.tar, faces-256.tar" in limits and "near chance" in limits
    assert "unlike its training images" in limits
    assert any("triage" in use for use in card["intended_use"])
    assert any("proof" in no for no in card["not_for"])


def test_the_examples_are_embedded_test_images_served_by_name(client, test_images):
    listed = client.get("/examples").json()
    assert [e["label"] for e in listed] == ["FAKE", "REAL"] * 3
    embedded = {p.read_bytes(): c for c, paths in test_images.items() for p in paths}
    for example in listed:
        answer = client.get(example["url"])
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert embedded[answer.content] == example["label"]  # a CIFAKE test image, its class
        assert "MIT" in example["credit"]
    head = client.head(listed[0]["url"])
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(client.get(listed[0]["url"]).content))
    for bad in ("nothing.jpg", "..%2Fconftest.py", "%2Fetc%2Fpasswd"):
        assert client.get(f"/examples/{bad}").status_code == 404, bad
    assert "GET /examples" in client.get("/examples/nothing.jpg").json()["detail"]


def test_the_legend_on_the_page_is_the_overlays_colour_map():
    """The page's colour scale (CSS) is matplotlib's jet, which the Grad-CAM overlay uses."""
    from matplotlib import colormaps

    from realfake.serve.routers.page import STATIC

    css = (STATIC / "style.css").read_text()
    gradient = re.search(r"\.legend-scale\s*{[^}]*linear-gradient\(to top,([^)]*)\)", css)
    assert gradient is not None
    stops = re.findall(r"#([0-9a-f]{6})\s+([\d.]+)%", gradient.group(1))
    assert len(stops) >= 10 and stops[0][1] == "0" and stops[-1][1] == "100"
    for colour, at in stops:
        want = np.array(colormaps["jet"](float(at) / 100)[:3]) * 255
        got = np.array([int(colour[i : i + 2], 16) for i in (0, 2, 4)])
        assert np.abs(got - want).max() <= 2, (colour, at)


def test_a_hand_edited_record_leaves_its_section_out_and_the_model_served(frozen_run, tmp_path):
    run = Path(shutil.copytree(frozen_run, tmp_path / "tiny"))
    (run / "config.yaml").write_text("data: [not, a, mapping\n")  # not YAML at all
    record = json.loads((run / "metrics.json").read_text())
    record["metrics"]["per_source"] = {"cifake-mini": {"n": "many"}}
    (run / "metrics.json").write_text(json.dumps(record))
    with TestClient(create_app(str(run), SETTINGS)) as c:
        wait_ready(c)
        card = c.get("/model-card").json()
        assert (
            c.post(
                "/predict", files=[("files", ("a.png", _png(Image.new("RGB", (32, 32)))))]
            ).status_code
            == 200
        )
    assert card["training_data"] is None and card["evaluation"] is None
    assert "config.yaml could not be read (ValueError)" in card["missing"]
    assert any(m.startswith("metrics.json has an unexpected shape") for m in card["missing"])
    assert card["decision_rule"]["rule"] == "threshold"  # the rest of the card stands
