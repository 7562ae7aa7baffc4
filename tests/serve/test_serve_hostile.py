"""Bad input never hurts the service: each hostile upload gets its 4xx, the next request works."""

from __future__ import annotations

import asyncio
import logging
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
    assert "bomb.png" in answer.json()["detail"] and "pixels" in answer.json()["detail"]


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
