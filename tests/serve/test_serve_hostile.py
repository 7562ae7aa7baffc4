"""Bad input never hurts the service: each hostile upload gets its 4xx, the next request works."""

from __future__ import annotations

import asyncio
import logging
import struct
import threading

import pytest
from conftest import SETTINGS, png_bytes, png_declaring, wait_ready
from fastapi.testclient import TestClient

from realfake.serve import ServeSettings, create_app
from realfake.serve.limits import BodyLimit


@pytest.fixture(autouse=True)
def _still_serves_afterwards(client, two_images):
    yield
    path = two_images[0]
    after = client.post("/predict", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))])
    assert after.status_code == 200, after.text


def test_a_file_that_is_not_an_image_is_415_naming_it(client):
    answer = client.post(
        "/predict", files=[("files", ("report.pdf", b"%PDF-1.4 ...", "application/pdf"))]
    )
    assert answer.status_code == 415
    assert "report.pdf" in answer.json()["detail"]
    legacy = client.post("/predict/", files={"data": ("x.gif", b"GIF89a-broken", "image/gif")})
    assert legacy.status_code == 415 and "x.gif" in legacy.json()["detail"]


def test_a_truncated_image_is_refused_naming_it(client, two_images):
    data = two_images[0].read_bytes()
    answer = client.post(
        "/predict", files=[("files", ("cut.jpg", data[: len(data) // 3], "image/jpeg"))]
    )
    assert answer.status_code == 415 and "cut.jpg" in answer.json()["detail"]


@pytest.mark.parametrize("side", [20_000, 2_500])  # Pillow's own bomb guard, and ours (4 MP here)
def test_a_decompression_bomb_is_refused_from_its_header(client, side):
    # The PNG holds 64 bytes of pixel data: decoding it would fail as truncated (415); a 413
    # saying "pixels" shows the header was checked and no decode was tried.
    answer = client.post(
        "/predict", files=[("files", ("bomb.png", png_declaring(side, side), "image/png"))]
    )
    assert answer.status_code == 413
    detail = answer.json()["detail"]
    assert "bomb.png" in detail and f"{side * side:,} pixels" in detail
    # The limit the client can act on is the service's, whichever guard fired first.
    assert f"the limit is {SETTINGS.max_pixels:,} pixels" in detail
    assert "DOS" not in detail and "178956970" not in detail


def dds_header() -> bytes:
    """The 128-byte header of a DDS file in a pixel format Pillow does not implement."""
    fields = struct.pack("<7I", 124, 0x1007, 64, 64, 0, 0, 0) + b"\0" * 44
    pixel_format = struct.pack("<2I", 32, 0x4) + b"XYZW" + b"\0" * 20
    return b"DDS " + fields + pixel_format + struct.pack("<5I", 0x1000, 0, 0, 0, 0)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_file_pillow_cannot_decode_is_refused_alone_on_both_backends(
    backend, client, onnx_client, two_images
):
    """Pillow raises NotImplementedError for this header: a 415 for it, answers for the rest."""
    service = client if backend == "torch" else onnx_client
    good = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in two_images]
    files = [good[0], ("files", ("odd.dds", dds_header(), "image/vnd-ms.dds")), good[1]]
    answer = service.post("/predict", files=files)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["label"] is not None for r in results] == [True, False, True]
    assert results[1]["status"] == 415
    assert results[1]["error"].startswith("odd.dds: cannot decode (NotImplementedError")
    alone = service.post("/predict", files=[files[1]])
    assert alone.status_code == 415 and "odd.dds" in alone.json()["detail"]


def test_a_truncated_jpeg_gets_the_sentence_realfake_predict_writes(
    client, frozen_run, two_images, tmp_path
):
    import pandas as pd

    from realfake.cli import main

    data = two_images[0].read_bytes()
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    (folder / "whole.jpg").write_bytes(data)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(frozen_run), str(folder), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False).set_index("filename")
    written = table.loc["cut.jpg", "error"]
    assert "truncated" in written
    answer = client.post(
        "/predict", files=[("files", ("cut.jpg", data[: len(data) // 2], "image/jpeg"))]
    )
    assert answer.status_code == 415
    assert answer.json()["detail"] == f"cut.jpg: {written}"


def test_when_every_file_is_refused_the_answer_lists_each(client):
    files = [
        ("files", ("a.txt", b"aaa", "text/plain")),
        ("files", ("b.png", png_declaring(9000, 9000), "image/png")),
    ]
    answer = client.post("/predict", files=files)
    assert answer.status_code == 415
    errors = [r["error"] for r in answer.json()["results"]]
    assert errors[0].startswith("a.txt") and errors[1].startswith("b.png")


def test_a_body_over_the_limit_is_413(client):
    big = b"\0" * (SETTINGS.max_body_bytes + 1)
    answer = client.post("/predict", files=[("files", ("big.png", big, "image/png"))])
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]


def test_too_many_files_is_413(client):
    files = [
        ("files", (f"{i}.png", png_bytes(), "image/png")) for i in range(SETTINGS.max_files + 1)
    ]
    answer = client.post("/predict", files=files)
    assert answer.status_code == 413 and "too many files" in answer.json()["detail"]
    two = [("data", ("a.png", png_bytes(), "image/png"))] * 2
    assert client.post("/predict/", files=two).status_code == 413


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "empty request"),
        ({"files": [("image", ("a.png", png_bytes(), "image/png"))]}, "unknown form field"),
        ({"files": {"files": (None, b"not a file")}}, "text, not a file"),
        ({"files": [("files", ("empty.png", b"", "image/png"))]}, "empty file"),
    ],
    ids=["empty", "unknown-field", "text-field", "empty-file"],
)
def test_unknown_fields_and_empty_requests_are_422(client, kwargs, words):
    answer = client.post("/predict", **kwargs)
    assert answer.status_code == 422
    assert words in answer.json()["detail"]


def test_a_body_that_is_not_multipart_is_415(client):
    answer = client.post("/predict", json={"image": "aGVsbG8="})
    assert answer.status_code == 415


def test_the_streamed_body_is_cut_at_the_limit_not_read_whole():
    """Chunked upload without Content-Length: the app gets the limit, the rest is discarded."""
    limit, chunk, drain = 64 * 1024, 16 * 1024, 1024 * 1024
    read = 0
    given = 0
    sent: list[dict] = []

    async def inner(scope, receive, send):
        nonlocal given
        while True:  # an app that would hold everything it is given
            message = await receive()
            given += len(message["body"])
            if not message.get("more_body"):
                break

    async def receive():
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * chunk, "more_body": read < 10_000}

    async def send(message):
        sent.append(message)

    app = BodyLimit(inner, limit, on_refused=lambda path: None, drain_bytes=drain)
    scope = {"type": "http", "path": "/predict", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert given == limit  # the app saw up to the limit; the chunk past it never reached it
    assert read * chunk <= limit + chunk + drain + chunk  # 160 MB offered, ~1 MB read
    assert (b"connection", b"close") in sent[0]["headers"]  # not drained to the end: close


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    async def inner(scope, receive, send):
        raise AssertionError("the app must not run")

    async def receive():
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": read < 3}

    read = 0
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/predict", "headers": [(b"content-length", b"999999999")]}
    asyncio.run(BodyLimit(inner, 1024, on_refused=lambda path: None)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") not in sent[0]["headers"]  # drained: the connection lives


class _Proxy:
    """The tiny run's predictor with one method replaced (a fault or a slow load)."""

    def __init__(self, predictor, **replaced):
        self._predictor = predictor
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._predictor, name)


def test_an_unexpected_failure_is_a_500_with_an_id_and_no_trace(tiny_run, two_images, caplog):
    from realfake.inference import Predictor

    real = Predictor.load(tiny_run)
    calls = []

    def probabilities(images, **kw):
        calls.append(1)
        if len(calls) > 1:  # the warm-up passes, requests fail
            raise RuntimeError("secret internal detail /srv/weights")
        return real.probabilities(images, **kw)

    app = create_app(_Proxy(real, probabilities=probabilities), SETTINGS)
    path = two_images[0]
    with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level(logging.ERROR):
        wait_ready(c)
        answer = c.post("/predict", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))])
        assert c.post("/predict", files={"image": ("a.png", png_bytes())}).status_code == 422
        metrics = c.get("/metrics").text
    assert answer.status_code == 500
    body = answer.json()
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert body["error_id"] in caplog.text and "secret internal detail" in caplog.text
    assert 'realfake_errors_total{endpoint="/predict",kind="internal"} 1.0' in metrics


def test_health_answers_while_loading_and_ready_waits_for_the_warm_up(tiny_run, two_images):
    from realfake.inference import Predictor

    real = Predictor.load(tiny_run)
    release = threading.Event()

    def probabilities(images, **kw):
        release.wait(30)  # the warm-up pass hangs until the test lets it go
        return real.probabilities(images, **kw)

    app = create_app(_Proxy(real, probabilities=probabilities), SETTINGS)
    path = two_images[0]
    with TestClient(app) as c:
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["model_loaded"] is False
        assert c.get("/ready").status_code == 503
        early = c.post("/predict", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))])
        assert early.status_code == 503 and early.headers["retry-after"] == "1"
        release.set()
        wait_ready(c)
        assert c.get("/health").json()["model_loaded"] is True


def test_a_model_that_fails_to_load_says_why_and_is_never_ready(tmp_path):
    app = create_app(str(tmp_path / "missing"), SETTINGS)
    with TestClient(app) as c:
        for _ in range(200):
            if c.get("/health").json()["error"]:
                break
            threading.Event().wait(0.01)
        assert "missing" in c.get("/health").json()["error"]
        assert c.get("/ready").status_code == 503


def test_an_api_key_when_set_is_required(tiny_run, two_images):
    settings = ServeSettings(api_key="s3cret-key")
    path = two_images[0]
    files = [("files", (path.name, path.read_bytes(), "image/jpeg"))]
    with TestClient(create_app(str(tiny_run), settings)) as c:
        wait_ready(c)
        assert c.get("/health").status_code == 200  # probes stay open
        assert c.post("/predict", files=files).status_code == 401
        assert c.post("/predict", files=files, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/metadata").status_code == 401
        assert (
            c.post("/predict", files=files, headers={"X-API-Key": "s3cret-key"}).status_code == 200
        )


def test_cors_is_off_unless_configured(client, tiny_run):
    asked = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/predict", headers=asked).headers
    settings = ServeSettings(cors_origins=("http://elsewhere.example",))
    with TestClient(create_app(str(tiny_run), settings)) as c:
        answer = c.options("/predict", headers=asked)
        assert answer.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_the_default_settings_bind_to_loopback():
    assert ServeSettings().host == "127.0.0.1"
    assert ServeSettings().api_key is None and ServeSettings().cors_origins == ()


def _multipart(field: str, name: str, data: bytes, boundary: str = "realfake-test") -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode()


def test_media_types_are_case_insensitive(client, two_images):
    body = _multipart("files", two_images[0].name, two_images[0].read_bytes())
    for ctype in ("Multipart/Form-Data", "MULTIPART/FORM-DATA"):
        answer = client.post(
            "/predict", content=body, headers={"Content-Type": f"{ctype}; boundary=realfake-test"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["label"] in ("FAKE", "REAL")


def test_a_client_that_aborts_its_upload_is_one_log_line_not_a_server_error(client, caplog):
    """Half a multipart body, then the client is gone: 499, kind="client_abort", no trace."""
    body = _multipart("files", "a.png", png_bytes() + b"\0" * 50_000)
    messages = [
        {"type": "http.request", "body": body[:20_000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"multipart/form-data; boundary=realfake-test"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.INFO, logger="realfake.serve"):
        client.portal.call(client.app, scope, receive, send)
    assert sent[0]["status"] == 499
    records = [r for r in caplog.records if r.name == "realfake.serve"]
    assert len(records) == 1 and records[0].exc_info is None, caplog.text
    assert "left" in records[0].getMessage() and "Traceback" not in caplog.text
    metrics = client.get("/metrics").text
    assert 'realfake_errors_total{endpoint="/predict",kind="client_abort"} 1.0' in metrics
    assert 'kind="internal"' not in metrics


def test_head_answers_every_get_endpoint_without_a_body(client):
    for path in ("/", "/health", "/ready", "/metadata", "/metrics", "/docs", "/openapi.json"):
        got = client.get(path)
        head = client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
    assert client.head("/static/app.js").status_code == 200
    assert client.head("/predict").status_code == 405  # POST only, as GET /predict is


def test_docs_work_offline(client):
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(?:https?:)?//[\w.-]+", page.text), "an external URL in /docs"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200 and answer.content, asset
    assert "/openapi.json" in page.text and client.get("/openapi.json").status_code == 200


def test_answers_never_carry_server_paths_or_library_text(tiny_run, tmp_path, two_images):
    from realfake.inference import Predictor

    missing = tmp_path / "deep" / "dir" / "missing"
    with TestClient(create_app(str(missing), SETTINGS)) as c:
        _wait_for_load_error(c)
        answers = [
            c.get("/health"),
            c.get("/ready"),
            c.get("/metadata"),
            c.post("/predict", files={"files": ("a.png", png_bytes())}),
        ]
    assert [a.status_code for a in answers] == [200, 503, 503, 503]
    assert "missing" in answers[0].json()["error"]  # what failed is still named
    for answer in answers:
        assert str(tmp_path) not in answer.text, answer.text

    real = Predictor.load(tiny_run)

    def probabilities(images, **kw):
        raise RuntimeError(f"CUDA error: an illegal memory access in {tmp_path}/libtorch.so")

    with TestClient(create_app(_Proxy(real, probabilities=probabilities), SETTINGS)) as c:
        error = _wait_for_load_error(c)
        predict = c.post("/predict", files={"files": ("a.png", png_bytes())})
    assert "RuntimeError" in error and "server log" in error
    for text in (error, predict.text):
        assert "CUDA" not in text and str(tmp_path) not in text and "Traceback" not in text


def _wait_for_load_error(c: TestClient) -> str:
    for _ in range(1000):
        error = c.get("/health").json()["error"]
        if error:
            return error
        threading.Event().wait(0.01)
    raise AssertionError("the model neither loaded nor failed in 10 s")


def test_a_threshold_frozen_with_the_other_tta_fails_the_load_with_predicts_sentence(frozen_run):
    """Never a silent arg-max: the service stays unready and says what predict says."""
    import dataclasses

    from realfake.errors import ConfigError
    from realfake.inference import Predictor, Scorer
    from realfake.serve.model import public_text

    predictor = Predictor.load(frozen_run)
    predictor.spec = dataclasses.replace(predictor.spec, flip_tta=not predictor.spec.flip_tta)
    with pytest.raises(ConfigError) as raised:
        Scorer.build(predictor)
    with TestClient(create_app(predictor, SETTINGS)) as c:
        error = _wait_for_load_error(c)
        ready = c.get("/ready")
        predict = c.post("/predict", files={"files": ("a.png", png_bytes())})
        app_service = c.app.state.service
    assert error == public_text(str(raised.value)) and "flip TTA" in error
    assert ready.status_code == 503 and ready.json()["detail"] == error
    assert predict.status_code == 503 and predict.json()["detail"] == error
    assert isinstance(app_service.load_failure, ConfigError)  # for the server's fail-fast


def test_big_uploads_decode_off_the_event_loop(tiny_run, monkeypatch):
    """While a 38 KB PNG of 6300×6300 pixels decodes, /health answers: the decode is held open
    until /health has answered, which would deadlock (and fail below) were it on the event
    loop. A forged PNG declaring as many pixels with 64 bytes of data is refused before
    anything is allocated."""
    import io

    from PIL import Image

    from realfake.serve import service as service_module

    real = service_module.decode_upload
    decoding, answered = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        decoding.set()
        answered.wait(20)  # on the event loop, this would keep /health from ever answering
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module, "decode_upload", held)
    buffer = io.BytesIO()
    Image.new("L", (6300, 6300)).save(buffer, format="PNG")
    heavy = buffer.getvalue()
    settings = ServeSettings(max_pixels=40_000_000, max_body_bytes=1024 * 1024)
    with TestClient(create_app(str(tiny_run), settings)) as c:
        wait_ready(c)
        done: list = []
        worker = threading.Thread(
            target=lambda: done.append(c.post("/predict", files=[("files", ("big.png", heavy))]))
        )
        worker.start()
        assert decoding.wait(20), "the upload never reached the decoder"
        health: list = []
        probe = threading.Thread(target=lambda: health.append(c.get("/health").status_code))
        probe.start()
        probe.join(10)
        answered.set()
        worker.join(60)
        forged = c.post("/predict", files=[("files", ("forged.png", png_declaring(6300, 6300)))])
    assert health == [200], "/health did not answer while an upload was decoding"
    assert forged.status_code == 415
    assert "forged.png: truncated file" in forged.json()["detail"]
    assert "cannot hold 6300×6300 pixels" in forged.json()["detail"]
    assert done[0].status_code == 200 and done[0].json()["results"][0]["label"]
