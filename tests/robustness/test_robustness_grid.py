"""The robustness table of a real (tiny) run, its files, and the command line over it."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realfake.cli import main
from realfake.robustness.grid import compare, robustness_report, write_csv
from realfake.robustness.plot import plot_heatmap
from realfake.robustness.scores import score


@pytest.fixture
def report(robustness):
    """The tiny run's grid (conftest): jpeg:50, blur:1, noise:0.05 with noise seed 1."""
    return robustness


def test_report_has_clean_and_every_perturbation(report) -> None:
    assert [r.perturbation for r in report.rows] == ["clean", "jpeg:50", "blur:1", "noise:0.05"]
    assert all(r.n == 200 for r in report.rows)  # the embedded test split
    for row in report.rows:
        for metric in ("accuracy", "f1", "roc_auc", "ap"):
            assert 0.0 <= getattr(row, metric) <= 1.0, (row.perturbation, metric)
    # Nothing is frozen for the tiny run: every row is decided by the arg-max, and it says so.
    assert report.threshold is None and report.decision.startswith("arg-max")
    assert report.positive == "FAKE" and report.classes == ["FAKE", "REAL"]
    mean = report.mean()
    assert mean["accuracy"] == pytest.approx(np.mean([r.accuracy for r in report.perturbed]))
    records = report.records()
    assert records[-1]["perturbation"] == "mean" and len(records) == 5


@pytest.mark.slow
def test_same_seed_same_table(report, tiny_run: Path) -> None:
    again = robustness_report(tiny_run, perturbations="noise:0.05", seed=1)
    assert again.rows[1] == report.rows[3]
    assert again.threshold == report.threshold


def test_csv_and_heatmap_files(report, tmp_path: Path) -> None:
    path = write_csv(report.records(), tmp_path / "r.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["perturbation"] for r in rows] == ["clean", "jpeg:50", "blur:1", "noise:0.05", "mean"]
    png = plot_heatmap(report, tmp_path / "r.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 200
    side = compare({"a": report, "b": report})
    assert side[0] == {
        "perturbation": "clean",
        "a": report.clean.accuracy,
        "b": report.clean.accuracy,
    }
    assert side[-1]["perturbation"] == "mean"


@pytest.mark.slow
def test_the_grid_never_chooses_a_threshold_itself(frozen) -> None:
    """A frozen threshold is used as it is (never re-chosen on validation), clean row included."""
    run, result = frozen
    grid = robustness_report(run, perturbations="jpeg:50")
    assert grid.threshold == result.record["threshold"]
    assert grid.clean.accuracy == result.metrics["accuracy"]


def test_every_perturbation_reaches_the_images(report) -> None:
    # Under-trained as it is, the model ranks blurred, noisy or recompressed images differently:
    # a grid whose perturbations never applied would repeat the clean row.
    for row in report.perturbed:
        assert (row.roc_auc, row.ap) != (report.clean.roc_auc, report.clean.ap), row.perturbation


def test_scores_of_a_known_case() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])  # FAKE = 0 is the positive class
    p_fake = np.array([0.9, 0.8, 0.3, 0.35, 0.2, 0.1])
    probs = np.stack([p_fake, 1 - p_fake], 1)
    at_half = score(probs, labels, ["FAKE", "REAL"], 0.5, positive=0)
    assert at_half["accuracy"] == pytest.approx(5 / 6) and at_half["f1"] == pytest.approx(0.8)
    assert score(probs, labels, ["FAKE", "REAL"], 0.85, 0)["accuracy"] == pytest.approx(4 / 6)
    assert at_half["roc_auc"] == pytest.approx(8 / 9)
    multi = score(np.eye(3)[[0, 1, 2, 1]], np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert multi["accuracy"] == 0.75 and not math.isnan(multi["roc_auc"])
    assert all(math.isnan(v) for v in score(probs[:0], labels[:0], ["FAKE", "REAL"]).values())


@pytest.mark.slow
def test_cli_writes_table_csv_and_plot(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["robustness", str(tiny_run), str(tiny_run), "--perturbations", "blur:2"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "blur:2" in out and "mean over grid" in out and "decision: arg-max" in out
    assert "accuracy, side by side" in out
    assert (tmp_path / "tiny" / "robustness.csv").is_file()
    assert (tmp_path / "tiny-2" / "robustness.png").is_file()
    assert (tmp_path / "comparison.csv").is_file()


def test_cli_bad_spec_is_one_line(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["robustness", str(tiny_run), "--perturbations", "sharpen:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: perturbation 'sharpen:1'") and err.count("\n") == 1
