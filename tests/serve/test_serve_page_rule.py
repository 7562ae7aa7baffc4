"""The page says which rule decided each label, and marks a threshold on the bars (Chromium).

Slow: a server in a subprocess and a headless browser; it skips without Chromium.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _module(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_each_card_shows_the_rule_and_its_threshold_line_agrees_with_the_label(
    frozen_run, test_images, tmp_path
):
    serve_common = _module("serve_common")
    found = serve_common.chromium()
    if found is None:
        pytest.skip("Chromium or chromedriver not installed (apt-get install chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    images = test_images["FAKE"][:3] + test_images["REAL"][:3]
    browser, driver_path = found
    options = serve_common.chromium_options(
        webdriver, browser, tmp_path / "chromium-profile", "1100,900"
    )
    command = serve_common.realfake_serve(frozen_run)
    with serve_common.running(command, tmp_path / "server.log") as server:
        import httpx

        rule = httpx.get(server.url + "/metadata").json()["rule"]
        assert rule["rule"] == "threshold"
        session = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=driver_path)
        )
        try:
            session.get(server.url + "/")
            wait = WebDriverWait(session, 60)
            wait.until(lambda b: rule["text"] in b.find_element(By.ID, "model").text)
            session.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in images))
            wait.until(
                lambda b: (
                    len(b.find_elements(By.CSS_SELECTOR, ".result[data-state='done']"))
                    == len(images)
                )
            )
            judged = 0
            for card in session.find_elements(By.CSS_SELECTOR, ".result"):
                label = card.find_element(By.CSS_SELECTOR, ".label").text
                assert card.get_attribute("data-rule") == "threshold"
                note = card.find_element(By.CSS_SELECTOR, ".note").text
                assert note == f"decided by {rule['text']}"
                for row in card.find_elements(By.CSS_SELECTOR, ".bar-row"):
                    name = row.find_element(By.CSS_SELECTOR, "span").text
                    fill = row.find_element(By.CSS_SELECTOR, ".bar span").size["width"]
                    mark = session.execute_script(
                        "const m = arguments[0].querySelector('.mark');"
                        "return m.offsetLeft + m.offsetWidth / 2;",
                        row,
                    )
                    if abs(fill - mark) < 2:
                        continue  # within a pixel of the line: the eye cannot tell either
                    # The label's bar passes its decision line; the other class's does not.
                    assert (fill > mark) == (name == label), (name, label, fill, mark)
                    judged += 1
            assert judged >= len(images)
        finally:
            session.quit()
