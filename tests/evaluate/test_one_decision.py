"""One decision per run: every surface decides an image as evaluate did, and says by which rule.

The run here has a threshold frozen for its weights (the ``frozen`` fixture: chosen with
``evaluate(freeze="youden")``, then placed at the median P(FAKE) of the test images so that it
decides many images unlike the arg-max). Every command must use it without choosing again.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from realfake.inference import Scorer

# Each test compares a whole surface with evaluate on a run frozen for the purpose: end to end.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def decided(frozen):
    """evaluate's per-image decisions on the frozen run's test split, by file name."""
    run, result = frozen
    table = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    return dict(zip(table["filename"], table["predicted"], strict=True)), table, result


def test_the_frozen_rule_decides_unlike_the_argmax(decided):
    _, table, result = decided
    argmax = np.where(table["prob_FAKE"] >= table["prob_REAL"], "FAKE", "REAL")
    assert (argmax != table["predicted"]).sum() >= 5  # so agreement below means something
    assert result.record["decision"]["origin"] == "frozen"
    assert result.metrics["accuracy"] != result.metrics["accuracy_argmax"]


def test_predict_decides_each_image_as_evaluate(frozen, decided, test_folder, tmp_path):
    from realfake.cli import main

    run, result = frozen
    by_name, _, _ = decided
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(test_folder), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    table = table[table["error"] == ""]
    # The test folder holds the run's test images (test/<class>/<name>) as <class>/<name>.
    assert len(table) == len(by_name) == 200
    for name, label in zip(table["filename"], table["label"], strict=True):
        assert by_name[f"test/{name}"] == label, name
    # The verdicts too (the label, or UNSURE with the same reason).
    evaluated = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    said = dict(zip(evaluated["filename"], evaluated["verdict"], strict=True))
    for name, verdict in zip(table["filename"], table["verdict"], strict=True):
        assert said[f"test/{name}"] == verdict, name
    meta = json.loads((tmp_path / "p.meta.json").read_text())
    assert meta["decision"]["threshold"] == result.record["threshold"]
    assert meta["decision"]["text"] == result.record["decision"]["text"]


def test_robustness_and_audits_use_the_frozen_rule(frozen):
    from realfake.robustness.grid import robustness_report
    from realfake.robustness.leaks import score_without_leaks
    from realfake.robustness.shortcuts import audit_shortcuts

    run, result = frozen
    scorer = Scorer.open(run)
    report = robustness_report(scorer, perturbations="jpeg:50")
    assert report.threshold == result.record["threshold"]
    assert report.clean.accuracy == result.metrics["accuracy"]
    assert report.decision == result.record["decision"]["text"]
    audit = audit_shortcuts(scorer, jpeg_qualities=(95,), sizes=(32,))
    assert audit.clean_accuracy == result.metrics["accuracy"]
    assert audit.decision == result.record["decision"]["text"]
    leaks = score_without_leaks(scorer, [])
    assert leaks.all["accuracy"] == result.metrics["accuracy"]


def test_explain_labels_each_image_as_evaluate(frozen, decided, tmp_path):
    from realfake.explain.explain import explain
    from realfake.inference.splits import eval_images

    run, _ = frozen
    by_name, _, _ = decided
    scorer = Scorer.open(run)
    test = eval_images(scorer.predictor, None, "test")
    folder = tmp_path / "images"
    folder.mkdir()
    from PIL import Image

    names = {}
    for k, (name, image) in enumerate(zip(test.split.names, test.split.images, strict=True)):
        # Lossless copies of the decoded test images: the same pixels evaluate scored.
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{k:03d}.png")
        names[f"{k:03d}.png"] = name
    done = explain(scorer, folder, tmp_path / "cam", size=32)
    assert len(done) == 200
    for item in done:
        assert by_name[names[item.name]] == item.predicted, item.name


def test_the_exported_graph_carries_the_rule(frozen, decided, tiny_onnx):
    from realfake.inference.splits import eval_images

    run, result = frozen
    onnx = Scorer.open(tiny_onnx)
    assert onnx.rule.threshold == result.record["threshold"]
    torch_scorer = Scorer.open(run)
    test = eval_images(torch_scorer.predictor, None, "test")
    got = onnx.decide(onnx.probabilities(test.split.images))
    want = torch_scorer.decide(torch_scorer.probabilities(test.split.images))
    # ONNX Runtime and torch differ in the last float bits: allow one borderline image.
    assert (got != want).sum() <= 1
