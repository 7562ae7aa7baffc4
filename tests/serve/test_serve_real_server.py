"""The real server (uvicorn in a subprocess, loopback): a browser session and a bounded load test.

Both are slow (a server start, a browser, seconds of traffic) and stop by themselves.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

pytestmark = pytest.mark.slow


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


serve_common = _module("serve_common")
load_serve = _module("load_serve")


def test_the_page_classifies_two_uploaded_images_in_chromium(
    tiny_run, evaluated, two_images, tmp_path
):
    found = serve_common.chromium()
    if found is None:
        pytest.skip(
            "Chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = found
    options = serve_common.chromium_options(
        webdriver, browser, tmp_path / "chromium-profile", "1100,720"
    )
    command = serve_common.realfake_serve(tiny_run)
    with serve_common.running(command, tmp_path / "server.log") as server:
        import httpx

        expected = {}
        for path in two_images:
            answer = httpx.post(
                server.url + "/predict",
                files={"files": (path.name, path.read_bytes(), "image/jpeg")},
            )
            expected[path.name] = answer.json()["results"][0]["label"]
        service = webdriver.ChromeService(executable_path=driver_path)
        browser_session = webdriver.Chrome(options=options, service=service)
        try:
            browser_session.get(server.url + "/")
            wait = WebDriverWait(browser_session, 60)
            wait.until(lambda b: "fastnet" in b.find_element(By.ID, "model").text)
            upload = browser_session.find_element(By.ID, "files")
            upload.send_keys("\n".join(str(p) for p in two_images))
            wait.until(
                lambda b: (
                    len(b.find_elements(By.CSS_SELECTOR, ".result[data-state='done']")) == 2
                    or b.find_elements(By.CSS_SELECTOR, ".result[data-state='error']")
                )
            )
            cards = browser_session.find_elements(By.CSS_SELECTOR, ".result")
            seen = {}
            for card in cards:
                assert card.get_attribute("data-state") == "done", card.text
                name = card.get_attribute("data-file")
                seen[name] = card.get_attribute("data-label")
                assert card.find_element(By.CSS_SELECTOR, ".verdict").text.startswith(
                    ("Likely", "Not sure")
                )
                assert len(card.find_elements(By.CSS_SELECTOR, ".bar-row")) == 2
                cam = card.find_element(By.CSS_SELECTOR, "img.cam")
                assert browser_session.execute_script("return arguments[0].naturalWidth", cam) > 0
                thumb = card.find_element(By.CSS_SELECTOR, "img.thumb")
                assert (
                    browser_session.execute_script("return arguments[0].naturalWidth", thumb) == 32
                )
            assert seen == expected
            shot = Path(os.environ.get("REALFAKE_SERVE_SCREENSHOT", tmp_path / "serve.png"))
            shot.parent.mkdir(parents=True, exist_ok=True)
            assert browser_session.save_screenshot(str(shot))
            assert shot.stat().st_size > 10_000
            logs = [e for e in browser_session.get_log("browser") if e["level"] == "SEVERE"]
            assert not logs, logs  # no blocked asset, no script error
        finally:
            browser_session.quit()


def test_many_clients_mixing_health_predict_and_bad_uploads(tiny_run):
    """The load scenario at a smaller scale: no 5xx, no dropped connection, RSS flat."""
    log = Path(tempfile.mkdtemp()) / "server.log"
    command = serve_common.realfake_serve(tiny_run, *load_serve.serve_args())
    images = load_serve.embedded_images()
    with serve_common.running(command, log) as server:
        report = asyncio.run(load_serve.load(server, images, clients=40, seconds=8))
        import httpx

        metrics = httpx.get(server.url + "/metrics").text
    print(load_serve.summary(report, warmup=4))
    assert report.requests > 40
    assert report.server_errors == 0
    assert not report.unexpected, report.unexpected
    assert not report.transport_errors, report.transport_errors
    assert {kind for kind, _ in report.statuses} == set(load_serve.EXPECTED)
    assert report.rss_growth_mb(warmup=4) < 50
    batched = [line for line in metrics.splitlines() if line.startswith("realfake_batch_size_sum")]
    count = [line for line in metrics.splitlines() if line.startswith("realfake_batch_size_count")]
    assert float(batched[0].split()[1]) > float(count[0].split()[1])  # some passes held 2+ images
