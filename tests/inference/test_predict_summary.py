"""The one-page HTML summary `realfake predict` writes beside its CSV."""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
from pathlib import Path

import pandas as pd
from PIL import Image

from realfake.cli import main

IMG = re.compile(r'<img[^>]* src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _counts(page: str) -> dict[str, int]:
    """Verdict -> images, as the page's count table says."""
    rows = re.findall(r'<tr data-verdict="([^"]+)">.*?<td class="n">(\d+)</td>', page)
    return {html.unescape(v): int(n) for v, n in rows}


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{html.escape(title)}")
    end = page.find("<h2>", start + 4)
    return page[start : end if end >= 0 else None]


def _names(section: str) -> list[str]:
    return [html.unescape(n) for n in re.findall(r'<span class="name">(.*?)</span>', section)]


def _predict(tiny_run: Path, folder: Path, out: Path, *extra: str) -> pd.DataFrame:
    assert main(["predict", str(tiny_run), str(folder), "--out", str(out), *extra]) == 0
    return pd.read_csv(out, keep_default_na=False)


def test_summary_counts_examples_and_thumbnails_match_the_csv(
    tiny_run, test_folder, tmp_path, capsys
):
    out = tmp_path / "predictions.csv"
    table = _predict(tiny_run, test_folder, out)
    page_path = tmp_path / "predictions.html"
    printed = capsys.readouterr().out
    assert f"summary page: {page_path}" in printed
    page = page_path.read_text()
    readable = table[table["error"] == ""]
    said = readable["verdict"].value_counts()
    assert _counts(page) == {
        "FAKE": int(said.get("FAKE", 0)),
        "REAL": int(said.get("REAL", 0)),
        "UNSURE": int(said.get("UNSURE", 0)),
        "unreadable": 2,
    }
    # 8 most confident per decided class and 8 most uncertain, each with its thumbnail.
    expected = sum(min(8, int(said.get(c, 0))) for c in ("FAKE", "REAL")) + 8
    thumbs = IMG.findall(page)
    assert len(thumbs) == page.count("<img") == expected
    with Image.open(io.BytesIO(base64.b64decode(thumbs[0]))) as im:
        assert im.format == "PNG" and max(im.size) <= 128
    fake = readable[readable["verdict"] == "FAKE"].sort_values("prob_FAKE", ascending=False)
    assert _names(_section(page, "Most confident FAKE")) == list(fake["filename"][:8])
    rule = re.search(r"^decision: (.*) \(recorded in", printed, re.M)
    assert rule is not None and html.escape(rule.group(1)) in page
    text = re.sub(r"<[^>]+>", "", page)
    assert "UNSURE means the model should not be trusted on that image" in text
    assert "absence of provenance proves nothing" in text
    assert "FAKE/corrupt.jpg" in _section(page, "Unreadable files")
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_hostile_file_names_are_escaped_and_the_summary_path_is_chosen(
    tiny_run, test_folder, tmp_path, capsys
):
    folder = tmp_path / "images"
    folder.mkdir()
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)<script>.jpg'
    shutil.copy(next((test_folder / "FAKE").glob("*.jpg")), folder / hostile)
    shutil.copy(next((test_folder / "REAL").glob("*.jpg")), folder / "caf\u00e9 \u732b.jpg")
    page_path = tmp_path / "pages" / "summary.html"
    _predict(tiny_run, folder, tmp_path / "p.csv", "--summary", str(page_path))
    assert f"summary page: {page_path}" in capsys.readouterr().out
    assert not (tmp_path / "p.html").exists()
    page = page_path.read_text()
    assert "<script" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(2)&lt;script&gt;" in page
    # Two images: each shown once among the most confident of its verdict, once as uncertain.
    assert len(IMG.findall(page)) == page.count("<img") == 4
    assert set(_names(page)) == {hostile, "caf\u00e9 \u732b.jpg"}


def test_no_summary_writes_none(tiny_run, test_folder, tmp_path, capsys):
    _predict(tiny_run, test_folder, tmp_path / "predictions.csv", "--no-summary")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".db") == [
        "predictions.csv",
        "predictions.meta.json",
    ]
    assert "summary page" not in capsys.readouterr().out


def test_summary_paths_are_checked_before_scoring(tiny_run, test_folder, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    (tmp_path / "predictions.html").write_text("keep me")
    assert main(["predict", str(tiny_run), str(test_folder), "--out", str(out)]) == 2
    assert "--summary" in capsys.readouterr().err and not out.exists()
    assert (tmp_path / "predictions.html").read_text() == "keep me"
    argv = ["predict", str(tiny_run), str(test_folder), "--out", str(out), "--summary", str(out)]
    assert main(argv) == 2
    assert "is the same file as --out" in capsys.readouterr().err and not out.exists()


def test_a_file_that_no_longer_decodes_gets_no_thumbnail(tiny_run, test_folder, tmp_path):
    from realfake.inference import Scorer
    from realfake.inference.summary import write_summary
    from realfake.inference.table import prediction_table

    folder = tmp_path / "images"
    folder.mkdir()
    for i, path in enumerate(sorted((test_folder / "FAKE").glob("*.jpg"))[:3]):
        shutil.copy(path, folder / f"{i}.jpg")
    scorer = Scorer.open(tiny_run)
    table = prediction_table(scorer, folder).table
    (folder / "1.jpg").write_bytes(b"\xff\xd8 replaced since it was scored")
    page = write_summary(table, scorer, folder, tmp_path / "s.html").read_text()
    shown = len(_names(page))
    appearances = _names(page).count("1.jpg")
    assert appearances >= 1
    assert len(IMG.findall(page)) == shown - appearances
    assert page.count("no preview") == appearances


def test_the_unsure_band_is_described_and_its_images_come_first(tiny_run, test_folder, tmp_path):
    from realfake.inference import Scorer
    from realfake.inference.rule import DecisionRule
    from realfake.inference.summary import write_summary
    from realfake.inference.table import prediction_table
    from realfake.runs import FrozenThreshold

    scorer = Scorer.open(tiny_run)
    positive = f"prob_{scorer.classes[scorer.positive]}"
    # One image's own probability as the threshold: at least that image is UNSURE.
    probs = prediction_table(scorer, test_folder).table[positive].dropna().sort_values()
    at = float(probs.iloc[len(probs) // 2])
    frozen = FrozenThreshold(
        at, scorer.tta, "accuracy", "a test", scorer.sha256, unsure_margin=0.1, target_error=0.05
    )
    scorer = scorer.with_rule(DecisionRule(at, scorer.positive, "frozen", "frozen: test", frozen))
    table = prediction_table(scorer, test_folder).table
    unsure = int((table["verdict"] == "UNSURE").sum())
    assert unsure >= 1
    page = write_summary(table, scorer, test_folder, tmp_path / "s.html", examples=3).read_text()
    assert _counts(page)["UNSURE"] == unsure
    assert f"within 0.100 of the threshold {at:.3f} is UNSURE" in page
    assert "wrong more often than 5%" in page
    uncertain = _section(page, "Most uncertain")
    verdicts = re.findall(r'<span class="verdict"[^>]*>(\w+)</span>', uncertain)
    assert verdicts[: min(3, unsure)] == ["UNSURE"] * min(3, unsure)
    assert len(IMG.findall(page)) == 3 * 3 - sum(
        max(0, 3 - int((table["verdict"] == c).sum())) for c in ("FAKE", "REAL")
    )
