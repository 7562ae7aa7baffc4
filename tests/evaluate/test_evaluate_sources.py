"""Per-source results: metrics by where the images come from, their table and their figure."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from realfake.data.embedded import embedded_data_path
from realfake.evaluate.evaluation import evaluate
from realfake.evaluate.figures import plot_per_source
from realfake.evaluate.metrics import classification_metrics, per_source_metrics
from realfake.evaluate.report import per_source_table, per_source_text

CLASSES = ["FAKE", "REAL"]  # FAKE = 0 is the positive class


def _example():
    """Eight images: sd14 (2 fakes, 2 reals), mj (2 fakes), camera (2 reals)."""
    p_fake = np.array([0.9, 0.6, 0.2, 0.7, 0.8, 0.3, 0.1, 0.4])
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    sources = ["sd14", "sd14", "sd14", "sd14", "mj", "mj", "camera", "camera"]
    probs = np.c_[p_fake, 1 - p_fake]
    predicted = np.where(p_fake >= 0.5, 0, 1)
    return probs, labels, predicted, sources


def test_each_source_is_measured_against_all_real_images() -> None:
    probs, labels, predicted, sources = _example()
    rows = per_source_metrics(probs, labels, predicted, sources, CLASSES, positive=0)
    assert list(rows) == ["sd14", "mj", "camera"]  # in order of appearance
    reals = probs[labels == 1, 0]  # every real image, whatever its source: 0.2 0.7 0.1 0.4
    sd, mj, camera = rows["sd14"], rows["mj"], rows["camera"]
    assert (sd["n"], sd["positives"], sd["negatives"]) == (4, 2, 2)
    # mj's fakes (0.8, 0.3) against the four reals: 0.8 beats all four, 0.3 beats two.
    assert mj["roc_auc"] == pytest.approx(6 / 8)
    truth = np.r_[np.ones(2), np.zeros(4)]
    assert sd["roc_auc"] == pytest.approx(roc_auc_score(truth, np.r_[0.9, 0.6, reals]))
    assert (sd["accuracy"], sd["recall"], sd["specificity"]) == (0.75, 1.0, 0.5)
    assert (mj["accuracy"], mj["recall"], mj["specificity"]) == (0.5, 0.5, None)
    # A source of reals alone: every fake against its reals (0.1, 0.4), and no recall.
    assert camera["roc_auc"] == pytest.approx(7 / 8)
    assert (camera["accuracy"], camera["recall"], camera["specificity"]) == (1.0, None, 1.0)


def test_one_source_is_one_row_that_agrees_with_the_whole_evaluation() -> None:
    probs, labels, predicted, _ = _example()
    whole = classification_metrics(probs, labels, CLASSES, positive=0)
    for sources, name in ((["cifake-mini"] * 8, "cifake-mini"), (None, "all")):
        rows = per_source_metrics(probs, labels, predicted, sources, CLASSES, positive=0)
        assert list(rows) == [name]
        row = rows[name]
        assert row["n"] == whole["n"] and row["accuracy"] == whole["accuracy"]
        assert row["roc_auc"] == pytest.approx(whole["roc_auc"])
        assert row["recall"] == whole["per_class"]["FAKE"]["recall"]
        assert row["specificity"] == whole["per_class"]["REAL"]["recall"]


def test_many_classes_get_images_and_accuracy_per_source(tmp_path: Path) -> None:
    probs = np.eye(3)[[0, 1, 2, 0]] * 0.8 + 0.2 / 3
    rows = per_source_metrics(
        probs, np.array([0, 1, 1, 0]), probs.argmax(1), list("aabb"), list("xyz")
    )
    assert rows["a"]["accuracy"] == 1.0 and rows["b"]["accuracy"] == 0.5
    assert rows["a"]["roc_auc"] is None and rows["b"]["recall"] is None
    table = per_source_table({"classes": list("xyz"), "positive_class": None, "per_source": rows})
    assert table is not None and table.header == ["source", "images", "accuracy"]
    # No ROC-AUC to draw: the figure shows accuracy alone.
    assert plot_per_source(rows, tmp_path / "per_source.png").stat().st_size > 5_000


def test_mismatched_lengths_are_refused() -> None:
    probs, labels, predicted, sources = _example()
    with pytest.raises(ValueError, match="7 sources, 8 labels"):
        per_source_metrics(probs, labels, predicted, sources[:7], CLASSES, positive=0)


def test_the_table_and_the_figure_show_every_source(tmp_path: Path) -> None:
    probs, labels, predicted, sources = _example()
    rows = per_source_metrics(probs, labels, predicted, sources, CLASSES, positive=0)
    metrics = {"classes": CLASSES, "positive_class": "FAKE", "per_source": rows}
    table = per_source_table(metrics)
    assert table is not None
    assert table.header[3:] == ["FAKE / REAL", "ROC-AUC", "recall (FAKE)", "specificity (REAL)"]
    assert [r[0] for r in table.rows] == ["sd14", "mj", "camera"]
    assert table.rows[1][3] == "2 / 0" and "| – |" in table.md()  # mj has no reals
    assert "against every REAL image of the evaluation" in per_source_text(metrics)
    assert per_source_table({"classes": CLASSES, "positive_class": "FAKE"}) is None  # older
    png = plot_per_source(rows, tmp_path / "per_source.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_the_runs_evaluation_reports_its_one_source(evaluated, tiny_run) -> None:
    record = json.loads((tiny_run / "metrics.json").read_text())
    rows = record["metrics"]["per_source"]
    assert list(rows) == ["cifake-mini"]
    assert rows["cifake-mini"]["n"] == 200
    assert rows["cifake-mini"]["accuracy"] == record["metrics"]["accuracy"]
    assert evaluated.figures["per_source"] == tiny_run / "figures" / "per_source.png"
    report = (tiny_run / "report.md").read_text()
    assert "| cifake-mini | 200 |" in report and "figures/per_source.png" in report


def test_evaluating_a_manifest_of_two_sources_reports_each(tiny_run, tmp_path: Path) -> None:
    test = embedded_data_path() / "test"
    folder = tmp_path / "mixed"
    rows = []
    for cls in ("FAKE", "REAL"):
        files = sorted((test / cls).glob("*.jpg"))[:20]
        for i, file in enumerate(files):
            (folder / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(file, folder / cls / file.name)
            source = "sd14" if cls == "FAKE" and i < 10 else ("camera" if cls == "REAL" else "mj")
            rows.append((f"{cls}/{file.name}", cls, source))
    manifest = folder / "labels.csv"
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([("path", "label", "source"), *rows])
    result = evaluate(tiny_run, data=manifest, out=tmp_path / "out", n_resamples=0, track=False)
    per_source = result.record["metrics"]["per_source"]
    assert sorted(per_source) == ["camera", "mj", "sd14"]
    assert {k: v["n"] for k, v in per_source.items()} == {"sd14": 10, "mj": 10, "camera": 20}
    assert per_source["camera"]["recall"] is None and per_source["sd14"]["specificity"] is None
    assert all(0 <= v["roc_auc"] <= 1 and not math.isnan(v["roc_auc"]) for v in per_source.values())
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metrics"]["per_source"] == per_source
    assert (tmp_path / "out" / "figures" / "per_source.png").is_file()
