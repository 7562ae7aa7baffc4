"""The page a non-expert reads, in headless Chromium: verdicts in plain words that agree with
the bars and their decision line, the file's evidence, a readable Grad-CAM with its colour
scale, examples to try, the model card, and a button that clears the page.

Slow: a server in a subprocess and a headless browser; it skips without Chromium.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

HEADLINES = {"FAKE": "Likely AI-generated", "REAL": "Likely a real photo", "UNSURE": "Not sure"}


def _module(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page(frozen_run, tmp_path_factory):
    """(browser session, server URL, the run's rule) with the page of the frozen run loaded."""
    yield from _page_of(frozen_run, tmp_path_factory.mktemp("page"))


def _page_of(model: Path, tmp: Path):
    serve_common = _module("serve_common")
    found = serve_common.chromium()
    if found is None:
        pytest.skip("Chromium or chromedriver not installed (apt-get install chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = found
    options = serve_common.chromium_options(webdriver, browser, tmp / "profile", "1100,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with serve_common.running(serve_common.realfake_serve(model), tmp / "server.log") as srv:
        import httpx

        rule = httpx.get(srv.url + "/metadata", timeout=10).json()["rule"]
        session = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=driver_path)
        )
        session.set_page_load_timeout(60)
        try:
            session.get(srv.url + "/")
            WebDriverWait(session, 60).until(
                lambda b: rule["text"] in b.find_element(By.ID, "model").text
            )
            yield session, srv.url, rule
            # Nothing the page did broke its own Content-Security-Policy or threw.
            severe = [e for e in session.get_log("browser") if e["level"] == "SEVERE"]
            assert not severe, severe
        finally:
            session.quit()


def _upload(session, paths: list[Path], timeout: float = 60) -> list:
    """Choose ``paths`` in the file input; the cards once each is done (or failed)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    session.find_element(By.ID, "clear").click()
    session.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    settled = ".result[data-state='done'], .result[data-state='error']"
    WebDriverWait(session, timeout).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, settled)) == len(paths)
    )
    return session.find_elements(By.CSS_SELECTOR, ".result")


def _card(cards, name: str):
    (card,) = [c for c in cards if c.get_attribute("data-file") == name]
    return card


def test_each_verdict_is_in_plain_words_and_agrees_with_the_bars_and_their_line(page, test_images):
    from selenium.webdriver.common.by import By

    session, _, rule = page
    assert rule["rule"] == "threshold"
    images = test_images["FAKE"][:3] + test_images["REAL"][:3]
    cards = _upload(session, images)
    judged = 0
    for card in cards:
        assert card.get_attribute("data-state") == "done"
        verdict, label = card.get_attribute("data-verdict"), card.get_attribute("data-label")
        assert card.find_element(By.CSS_SELECTOR, ".verdict").text == HEADLINES[verdict]
        assert card.find_element(By.CSS_SELECTOR, ".why").text  # why, in a sentence
        assert card.get_attribute("data-rule") == "threshold"
        assert card.find_element(By.CSS_SELECTOR, ".note.rule").text == f"decided by {rule['text']}"
        heading = card.find_element(By.CSS_SELECTOR, ".pixels h3").text
        assert heading.startswith("What the pixels say: ") and f"({label})" in heading
        for row in card.find_elements(By.CSS_SELECTOR, ".bar-row"):
            name = row.get_attribute("data-class")
            fill = row.find_element(By.CSS_SELECTOR, ".bar span").size["width"]
            mark = session.execute_script(
                "const m = arguments[0].querySelector('.mark');"
                "return m.offsetLeft + m.offsetWidth / 2;",
                row,
            )
            if abs(fill - mark) < 2:
                continue  # within a pixel of the line: the eye cannot tell either
            # The pixels' answer's bar passes its decision line; the other class's does not.
            assert (fill > mark) == (name == label), (name, label, fill, mark)
            judged += 1
        if verdict not in ("UNSURE", label):  # only metadata may overrule the pixels
            assert card.get_attribute("data-provenance") not in ("", "pixels")
    assert judged >= len(images)


def test_evidence_unsure_and_a_readable_heat_map_with_its_scale(page, test_images, tmp_path):
    from selenium.webdriver.common.by import By

    session, _, _ = page
    picture = Image.open(test_images["REAL"][0]).convert("RGB")
    info = PngInfo()
    info.add_text("parameters", "a photo of a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    picture.save(tmp_path / "declared.png", pnginfo=info)
    picture.save(tmp_path / "stripped.png")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    picture.resize((256, 256)).save(tmp_path / "large.png")  # a size the run never saw
    names = ("declared.png", "stripped.png", "noise.png", "large.png")
    cards = _upload(session, [tmp_path / n for n in names])

    declared = _card(cards, "declared.png")
    assert declared.find_element(By.CSS_SELECTOR, ".verdict").text == "Likely AI-generated"
    assert (
        "metadata says an AI generator made it"
        in declared.find_element(By.CSS_SELECTOR, ".why").text
    )
    evidence = declared.find_element(By.CSS_SELECTOR, ".evidence")
    assert "Stable Diffusion" in evidence.find_element(By.CSS_SELECTOR, "li").text
    stripped = _card(cards, "stripped.png").find_element(By.CSS_SELECTOR, ".evidence")
    assert "absence proves nothing" in stripped.find_element(By.CSS_SELECTOR, "li").text
    for section in (evidence, stripped):
        note = section.find_element(By.CSS_SELECTOR, ".absence")
        assert note.is_displayed() and "no metadata proves nothing" in note.text

    large = _card(cards, "large.png")
    assert large.find_element(By.CSS_SELECTOR, ".verdict").text == "Not sure"
    assert "size is far from" in large.find_element(By.CSS_SELECTOR, ".why").text
    noise_card = _card(cards, "noise.png")
    assert noise_card.find_element(By.CSS_SELECTOR, ".verdict").text == "Not sure"
    assert (
        "unlike the pictures the model learnt from"
        in noise_card.find_element(By.CSS_SELECTOR, ".why").text
    )
    assert (
        "unlike the training pictures"
        in noise_card.find_element(By.CSS_SELECTOR, ".pixels h3").text
    )

    for card in cards:
        cam = card.find_element(By.CSS_SELECTOR, "img.cam")
        natural, shown = session.execute_script(
            "const i = arguments[0]; return [i.naturalWidth, i.getBoundingClientRect().width];",
            cam,
        )
        # Two halves (picture | map) of at least 256 px each, shown at their own size.
        assert natural >= 2 * 256 and shown >= 2 * 256, (natural, shown)
        legend = card.find_element(By.CSS_SELECTOR, ".legend")
        scale = legend.find_element(By.CSS_SELECTOR, ".legend-scale")
        assert legend.is_displayed() and scale.size["height"] >= 120
        assert legend.text.split() == ["high", "low"]
        assert "gradient" in scale.value_of_css_property("background-image")
        # Beside the map, not under it.
        assert legend.location["x"] >= cam.location["x"] + shown - 1
        caption = card.find_element(By.CSS_SELECTOR, "figcaption").text
        assert "from blue (low) to red (high)" in caption


def test_an_example_the_model_card_and_the_clear_button(page, frozen_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    session, _, rule = page
    wait = WebDriverWait(session, 60)
    session.find_element(By.ID, "clear").click()
    buttons = session.find_elements(By.CSS_SELECTOR, "#examples button.example")
    assert len(buttons) == 6 and "MIT" in session.find_element(By.ID, "examples-credit").text
    assert all(
        b.find_element(By.TAG_NAME, "img").get_property("naturalWidth") == 32 for b in buttons
    )
    buttons[0].click()
    done = ".result[data-state='done']"
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, done)) == 1)
    card = session.find_element(By.CSS_SELECTOR, done)
    assert card.get_attribute("data-file") == "example-1.jpg"
    assert "The data set says this example is AI-generated (FAKE)" in card.text
    assert card.find_element(By.CSS_SELECTOR, ".verdict").text in HEADLINES.values()

    # The model card: the run's test figures, its rule and its limits, in words.
    record = json.loads((frozen_run / "metrics.json").read_text())
    section = session.find_element(By.ID, "card")
    wait.until(lambda b: "Limits" in section.text)
    accuracy = record["metrics"]["accuracy"]
    assert f"{100 * accuracy:.1f}%" in section.text
    assert rule["text"] in section.text and "near chance" in section.text
    assert "triage" in section.text and "proof" in section.text
    per_source = record["metrics"].get("per_source") or {}
    rows = section.find_elements(By.CSS_SELECTOR, "table.per-source tr[data-source]")
    assert [r.get_attribute("data-source") for r in rows] == list(per_source)

    session.find_element(By.ID, "clear").click()
    assert session.find_elements(By.CSS_SELECTOR, ".result") == []
    assert session.find_element(By.ID, "files").get_property("value") == ""


def test_an_onnx_service_says_why_there_is_no_heat_map(tiny_onnx, test_images, tmp_path):
    """An exported graph has no gradients: the card says so in words, instead of nothing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pages = _page_of(tiny_onnx, tmp_path)
    session, _, _ = next(pages)
    try:
        (card,) = _upload(session, test_images["REAL"][:1])
        assert card.get_attribute("data-state") == "done"
        assert card.find_elements(By.CSS_SELECTOR, "img.cam") == []
        note = card.find_element(By.CSS_SELECTOR, ".gradcam .no-cam").text
        assert note.startswith("No heat-map for this model:") and "torch backend" in note
        assert "ONNX graph" in note
        section = session.find_element(By.ID, "card")
        WebDriverWait(session, 30).until(lambda b: "Not on this card" in section.text)
        assert "no run directory" in section.text
    except BaseException:
        pages.close()  # the browser and the server stop
        raise
    next(pages, None)  # the browser's log is checked, then both stop
