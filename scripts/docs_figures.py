"""Draw the documentation's figures from a run: `python scripts/docs_figures.py [--run RUN]`.

Every figure comes from realfake's own code, as a user would get it:

  learning_curves.png, confusion_matrix.png  what `realfake evaluate RUN` writes to RUN/figures/
  robustness.png                             what `realfake robustness RUN` writes (its heat-map)
  gradcam.png                                two overlays of `realfake explain` (a FAKE, a REAL)
  serve_page.png                             the page of `realfake serve RUN` in headless Chromium,
                                             two test images dropped on it (skipped, saying why,
                                             without chromium and chromedriver)

Without --run, a short run of the demo recipe is trained on the embedded CIFAKE sample first
(about half a minute on 2 CPU cores). Figures go to docs/assets/figures/ (--out), each written
as an optimised PNG and, when still above --max-kb, reduced to a 256-colour palette.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "assets" / "figures"
sys.path.insert(0, str(ROOT / "benchmarks"))
import serve_common  # noqa: E402  (benchmarks/: the server and browser helpers)

# The short demo run drawn when no run is given: the demo recipe (fastnet, 900 training images),
# fewer epochs. Enough for learning curves with a shape and a better-than-chance model.
TINY_DEMO = [
    "experiment=demo",
    "trainer.max_epochs=6",
    "trainer.deterministic=true",
    "logging.mlflow=false",
    "logging.progress=none",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run directory (default: train one)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder ({OUT})")
    parser.add_argument("--max-kb", type=int, default=200, help="largest PNG wanted (200 kB)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("curves", "confusion", "robustness", "gradcam", "serve"),
        help="draw only these figures",
    )
    args = parser.parse_args(argv)
    wanted = set(args.only or ("curves", "confusion", "robustness", "gradcam", "serve"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="docs-figures-") as tmp:
        work = Path(tmp)
        run = args.run if args.run is not None else train_demo(work)
        written: list[Path] = []
        if wanted & {"curves", "confusion"}:
            written += evaluation_figures(run, args.out, wanted)
        if "robustness" in wanted:
            written.append(robustness_figure(run, args.out))
        if "gradcam" in wanted:
            written.append(gradcam_figure(run, args.out, work))
        if "serve" in wanted:
            shot = serve_figure(run, args.out, work)
            if shot is not None:
                written.append(shot)
    for path in written:
        small(path, args.max_kb)
        print(
            f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
            f"({path.stat().st_size / 1024:.0f} kB)"
        )
    return 0


def train_demo(work: Path) -> Path:
    """A short demo-recipe run on the embedded data (its own cache and runs folder)."""
    from realfake.train import compose, train

    os.environ.setdefault("REALFAKE_CACHE", str(work / "cache"))
    print("no --run given: training a short demo run on the embedded CIFAKE sample")
    result = train(compose([*TINY_DEMO, f"runs_dir={work / 'runs'}", "name=docs-demo"]))
    return result.run_dir


def evaluation_figures(run: Path, out: Path, wanted: set[str]) -> list[Path]:
    """`realfake evaluate RUN`: its learning curves and confusion matrix, copied as they are."""
    from realfake.evaluate.evaluation import evaluate

    result = evaluate(run, n_resamples=200)
    names = {"curves": "learning_curves", "confusion": "confusion_matrix"}
    copied = []
    for key, name in names.items():
        if key in wanted:
            copied.append(Path(shutil.copyfile(result.figures[name], out / f"{name}.png")))
    return copied


def robustness_figure(run: Path, out: Path) -> Path:
    """`realfake robustness RUN`: the heat-map of the default grid, as the command draws it."""
    from realfake.robustness.grid import robustness_report
    from realfake.robustness.plot import plot_heatmap

    report = robustness_report(run)
    return plot_heatmap(report, out / "robustness.png", title=f"{run.name}: {report.data}")


def gradcam_figure(run: Path, out: Path, work: Path) -> Path:
    """`realfake explain RUN`: one FAKE and one REAL test image, their overlays side by side."""
    from PIL import Image

    from realfake.data.embedded import embedded_data_path
    from realfake.explain.explain import explain

    test = embedded_data_path() / "test"
    overlays = []
    for cls in ("FAKE", "REAL"):
        first = sorted((test / cls).glob("*.jpg"))[0]
        done = explain(run, first, work / "gradcam" / cls, size=192)
        overlays.append(Image.open(done[0].path).convert("RGB"))
    gap = 12
    width = sum(o.width for o in overlays) + gap * (len(overlays) - 1)
    sheet = Image.new("RGB", (width, max(o.height for o in overlays)), "white")
    x = 0
    for o in overlays:
        sheet.paste(o, (x, 0))
        x += o.width + gap
    path = out / "gradcam.png"
    sheet.save(path, format="PNG", optimize=True)
    return path


def serve_figure(run: Path, out: Path, work: Path) -> Path | None:
    """`realfake serve RUN` on loopback, its page in headless Chromium with two images dropped."""
    found = serve_common.chromium()
    if found is None:
        print(
            "skipped serve_page.png: Chromium or chromedriver is not installed "
            "(apt-get install chromium chromium-driver)"
        )
        return None
    browser, driver = found
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        print("skipped serve_page.png: selenium is not installed (pip install selenium)")
        return None
    from realfake.data.embedded import embedded_data_path

    test = embedded_data_path() / "test"
    images = [sorted((test / cls).glob("*.jpg"))[1] for cls in ("FAKE", "REAL")]
    options = serve_common.chromium_options(
        webdriver, browser, work / "chromium-profile", "1000,1400", "--hide-scrollbars"
    )
    path = out / "serve_page.png"
    with serve_common.running(serve_common.realfake_serve(run), work / "serve.log") as server:
        url = server.url
        session = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
        try:
            session.get(url + "/")
            wait = WebDriverWait(session, 60)
            wait.until(lambda b: "loading" not in b.find_element(By.ID, "model").text)
            session.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in images))
            wait.until(
                lambda b: (
                    len(b.find_elements(By.CSS_SELECTOR, ".result[data-state='done']"))
                    == len(images)
                )
            )
            time.sleep(0.5)  # the Grad-CAM images decode after the cards are marked done
            session.save_screenshot(str(path))
        finally:
            session.quit()
    return path


def small(path: Path, max_kb: int) -> None:
    """Rewrite ``path`` as an optimised PNG; a 256-colour palette when that is still too big."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    image = image.convert("RGB")
    image.save(path, format="PNG", optimize=True)
    if path.stat().st_size > max_kb * 1024:
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            path, format="PNG", optimize=True
        )
    path.chmod(0o644)  # figures written through a temporary file are private (0600) otherwise


if __name__ == "__main__":
    sys.exit(main())
