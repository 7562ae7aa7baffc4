"""The service in process: probes, metadata, /predict, the write-up's contract, Grad-CAM."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest import SETTINGS, png_bytes, wait_ready
from fastapi.testclient import TestClient

from realfake.inference import Scorer
from realfake.serve import ServeSettings, create_app


def _files(paths, field="files"):
    return [(field, (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def test_health_and_ready_answer_once_loaded(client, frozen_run):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_loaded"] is True
    assert health["device"] == "cpu"
    assert health["checkpoint"].startswith(f"{frozen_run.name}/checkpoints/")
    assert str(frozen_run.parent) not in health["checkpoint"]  # no server directories leak
    assert client.get("/ready").status_code == 200


def test_metadata_describes_model_rule_and_checkpoint(client, frozen_run):
    from realfake import __version__

    scorer = Scorer.open(frozen_run)
    meta = client.get("/metadata").json()
    assert meta["model"] == "fastnet"
    assert meta["classes"] == ["FAKE", "REAL"] and meta["image_size"] == 32
    assert scorer.rule.origin == "frozen"  # evaluate froze one for these weights
    assert meta["threshold"] == pytest.approx(scorer.rule.threshold)
    assert meta["rule"] == {**scorer.rule_record(), "threshold": pytest.approx(meta["threshold"])}
    assert meta["rule"]["text"] == scorer.describe_rule()
    assert meta["flip_tta"] == scorer.tta
    assert meta["backend"] == "torch" and meta["explain"] is True
    assert meta["checkpoint_sha256"] == scorer.sha256
    assert meta["version"] == __version__
    assert meta["limits"]["max_files"] == SETTINGS.max_files


def test_predict_matches_the_predictor_for_every_file(client, frozen_run, test_images):
    paths = test_images["FAKE"][:2] + test_images["REAL"][:2]
    answer = client.post("/predict", files=_files(paths))
    assert answer.status_code == 200
    body = answer.json()
    results = body["results"]
    scorer = Scorer.open(frozen_run)
    expected = scorer.predict(paths)
    assert body["rule"]["text"] == scorer.describe_rule()
    assert body["rule"]["rule"] == "threshold" and body["rule"]["positive_class"] == "FAKE"
    assert [r["file"] for r in results] == [p.name for p in paths]
    for got, want in zip(results, expected, strict=True):
        assert got["label"] == want.label and got["index"] == want.index
        assert got["threshold"] == pytest.approx(scorer.rule.threshold)
        got_p = [got["probabilities"][c] for c in scorer.classes]
        np.testing.assert_allclose(
            got_p, [want.probabilities[c] for c in scorer.classes], atol=1e-6
        )


def test_a_bad_file_gets_its_own_error_and_the_others_their_results(client, two_images):
    files = [*_files(two_images), ("files", ("notes.txt", b"plain text, not pixels", "text/plain"))]
    answer = client.post("/predict", files=files)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["label"] is not None for r in results] == [True, True, False]
    assert results[2]["status"] == 415 and "notes.txt" in results[2]["error"]


def test_the_write_ups_contract_predict_slash_with_field_data(client, two_images):
    path = two_images[0]
    answer = client.post("/predict/", files={"data": (path.name, path.read_bytes(), "image/jpeg")})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"prediction", "probs"}  # the write-up's clients read exactly these
    meta = client.get("/metadata").json()
    assert answer.headers["x-decision-rule"] == meta["rule"]["text"]
    assert float(answer.headers["x-threshold"]) == pytest.approx(meta["threshold"])
    assert body["prediction"] in ("FAKE", "REAL")
    assert set(body["probs"]) == {"FAKE", "REAL"}
    assert sum(body["probs"].values()) == pytest.approx(1.0)
    health = client.get("/health").json()
    assert {"status", "model_loaded", "device", "checkpoint"} <= set(health)


def test_explain_answers_a_png_overlay_of_the_image_and_its_map(client, two_images):
    from PIL import Image

    path = two_images[0]
    answer = client.post("/explain", files={"file": (path.name, path.read_bytes(), "image/jpeg")})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB")).astype(int)
    size = SETTINGS.explain_size
    assert size >= 256 and picture.shape == (size, 2 * size + 4, 3)  # image | overlay, no strip
    # The left half is the picture as the network sees it, enlarged: no caption written over it.
    seen = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.NEAREST)
    assert np.array_equal(picture[:, :size], np.asarray(seen))
    # The map is smooth at the display size: within one enlarged pixel of the picture the
    # overlay still changes (a map enlarged block by block would be flat there).
    block = size // 32
    right = picture[:, size + 4 :]
    tiles = right.reshape(32, block, 32, block, 3).transpose(0, 2, 1, 3, 4).reshape(32, 32, -1)
    assert (tiles.max(-1) - tiles.min(-1) > 0).mean() > 0.5
    assert answer.headers["x-prediction"] in ("FAKE", "REAL")
    assert answer.headers["x-decision-rule"] == client.get("/metadata").json()["rule"]["text"]
    other = client.post(
        "/explain?target=REAL", files={"file": (path.name, path.read_bytes(), "image/jpeg")}
    )
    assert other.headers["x-explained-class"] == "REAL"
    assert (
        client.post("/explain?target=CAT", files={"file": ("a.png", png_bytes())}).status_code
        == 422
    )


def test_metrics_count_requests_errors_batches_and_load_time(client, two_images):
    client.post("/predict", files=_files(two_images))
    client.post("/predict", files=[("files", ("x.txt", b"text", "text/plain"))])
    text = client.get("/metrics").text
    assert 'realfake_requests_total{endpoint="/predict",status="200"}' in text
    assert 'realfake_errors_total{endpoint="/predict",kind="not_an_image"}' in text
    assert "realfake_request_latency_seconds_bucket" in text
    assert "realfake_batch_size_count" in text
    assert 'realfake_stage_seconds_count{stage="decode"}' in text
    load = [line for line in text.splitlines() if line.startswith("realfake_model_load_seconds ")]
    assert load and float(load[0].split()[1]) > 0


def test_two_apps_in_one_process_keep_their_own_metrics(frozen_run, client):
    from realfake.serve import create_app

    create_app(str(frozen_run))  # registering its metrics must not clash with the first app's
    assert client.get("/metrics").status_code == 200


def test_openapi_documents_the_endpoints_and_their_schemas(client):
    spec = client.get("/openapi.json").json()
    for path in ("/predict", "/predict/", "/explain", "/health", "/ready", "/metadata"):
        assert path in spec["paths"], path
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["properties"]["files"]["type"] == "array"
    assert {"ImageResult", "PredictResponse", "Metadata", "LegacyPrediction"} <= set(
        spec["components"]["schemas"]
    )


def test_the_api_docs_work_offline(client):
    """/docs loads Swagger UI from the app's own files (fastapi-offline), no CDN."""
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert [a for a in assets if a.endswith(".js")], page.text
    for asset in assets:
        assert not asset.startswith(("http://", "https://", "//")), asset
        assert client.get(asset).status_code == 200, asset
    assert client.head("/docs").status_code == 200


def test_the_page_and_its_assets_come_from_the_app(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("/static/app.js", "/static/style.css"):
        answer = client.get(asset)
        assert answer.status_code == 200 and answer.content, asset
        assert "https://" not in answer.text, asset
    assert client.get("/static/../app.py").status_code == 404


def test_each_worker_gets_its_share_of_the_cores_unless_told():
    cores = os.cpu_count() or 1
    assert ServeSettings().model_threads() == cores
    assert ServeSettings(workers=cores).model_threads() == 1
    assert ServeSettings(workers=2 * cores).model_threads() == 1
    assert ServeSettings(threads=3).model_threads() == 3


def test_an_onnx_file_serves_the_runs_answers(client, tiny_onnx, two_images):
    """`serve model.onnx`: ONNX Runtime answers as the torch service does; Grad-CAM says 501."""
    with TestClient(create_app(str(tiny_onnx), SETTINGS), raise_server_exceptions=False) as onnx:
        wait_ready(onnx)
        meta = onnx.get("/metadata").json()
        assert meta["backend"] == "onnx"
        assert meta["threshold"] == client.get("/metadata").json()["threshold"] is not None
        files = _files(two_images)
        by_onnx = onnx.post("/predict", files=files).json()["results"]
        by_torch = client.post("/predict", files=files).json()["results"]
        assert [r["label"] for r in by_onnx] == [r["label"] for r in by_torch]
        for a, b in zip(by_onnx, by_torch, strict=True):
            for c in a["probabilities"]:
                assert a["probabilities"][c] == pytest.approx(b["probabilities"][c], abs=1e-4)
        explain = onnx.post("/explain", files=_files(two_images[:1], "file"))
        assert explain.status_code == 501 and "torch backend" in explain.json()["detail"]
        assert meta["explain"] is False and "torch backend" in meta["explain_unavailable"]
