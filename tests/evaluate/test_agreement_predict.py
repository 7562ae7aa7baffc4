"""The prediction CSV a user gets for a folder, and one run scored alike by every command."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from realfake.errors import CheckpointError, ConfigError
from realfake.inference import Scorer
from realfake.inference.table import prediction_table

COLUMNS = [
    "filename",
    "label",
    "label_index",
    "prob_FAKE",
    "prob_REAL",
    "verdict",
    "reason",
    "pixel_verdict",
    "evidence",
    "error",
]


def _accuracy_from_folder_names(table: pd.DataFrame) -> float:
    good = table[table["error"] == ""]
    truth = good["filename"].str.split("/").str[0]  # FAKE/x.jpg -> FAKE
    return float((good["label"] == truth).mean())


def test_prediction_csv_has_one_row_per_file_and_error_rows(
    tiny_run, test_folder, tmp_path, capsys
):
    from realfake.cli import main

    out = tmp_path / "predictions.csv"
    assert main(["predict", str(tiny_run), str(test_folder), "--out", str(out)]) == 0
    assert "left out 1 non-image file(s), by extension: REAL/notes.txt" in capsys.readouterr().out
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == COLUMNS
    assert len(rows) == 202  # 200 images and the 2 unreadable files
    errors = {r["filename"]: r for r in rows if r["error"]}
    assert set(errors) == {"FAKE/corrupt.jpg", "REAL/empty.jpg"}
    for row in errors.values():
        assert row["label"] == row["label_index"] == row["prob_FAKE"] == row["prob_REAL"] == ""
    assert "0 bytes" in errors["REAL/empty.jpg"]["error"]
    for row in rows:
        if not row["error"]:
            # CIFAKE's order, as in the checkpoint: 0 = FAKE, 1 = REAL.
            assert row["label_index"] == {"FAKE": "0", "REAL": "1"}[row["label"]]
            assert float(row["prob_FAKE"]) + float(row["prob_REAL"]) == pytest.approx(1, abs=1e-5)
    assert [r["filename"] for r in rows] == sorted(r["filename"] for r in rows)
    with pytest.raises(SystemExit):  # argparse's usage message, not a traceback
        main(["predict", str(tiny_run), str(test_folder), "--batch-size", "0"])


def test_evaluate_robustness_and_predict_agree_exactly(
    evaluated, robustness, tiny_run, test_folder, tmp_path
):
    """One run, one set of images: evaluate, the robustness grid's clean row, predict's CSV and
    training's own test step give the same accuracy, by the same rule (the arg-max here)."""
    from realfake.cli import main

    report = robustness
    assert report.threshold is None and evaluated.record["threshold"] is None
    assert report.decision == evaluated.record["decision"]["text"]
    assert report.clean.accuracy == evaluated.metrics["accuracy"]
    assert report.clean.roc_auc == evaluated.metrics["roc_auc"]
    out = tmp_path / "predicted.csv"
    assert main(["predict", str(tiny_run), str(test_folder), "--out", str(out)]) == 0
    predicted = pd.read_csv(out, keep_default_na=False)
    assert _accuracy_from_folder_names(predicted) == evaluated.metrics["accuracy"]
    meta = json.loads((tmp_path / "predicted.meta.json").read_text())
    assert meta["decision"]["text"] == evaluated.record["decision"]["text"]
    trained = json.loads((tiny_run / "results.json").read_text())["metrics"]
    # (torchmetrics reports float32: equal within its precision, far below one image in 200)
    assert evaluated.metrics["accuracy"] == pytest.approx(trained["test_acc"], abs=1e-6)
    # The perturbed images score differently: the perturbations reached the images.
    assert report.rows[1].roc_auc != report.clean.roc_auc


@pytest.mark.slow
def test_a_frozen_threshold_belongs_to_its_weights_and_its_tta(frozen, tmp_path):
    run, result = frozen
    spec = json.loads((run / "model.json").read_text())
    assert spec["threshold"]["value"] == result.record["threshold"]
    assert spec["threshold"]["tta"] is True and spec["positive_class"] == "FAKE"
    scorer = Scorer.open(run)
    assert scorer.rule.threshold == result.record["threshold"]
    assert scorer.rule.origin == "frozen"
    # The other TTA than it was chosen with: one sentence, never a silent arg-max.
    with pytest.raises(ConfigError, match="chosen with flip TTA on"):
        Scorer.open(run, tta=False)
    assert Scorer.open(run, tta=False, threshold="argmax").rule.threshold is None
    # A threshold chosen for other weights is never borrowed, and the rule says why.
    other = Path(shutil.copytree(run, tmp_path / "other"))
    spec["threshold"]["checkpoint_sha256"] = "0" * 64
    (other / "model.json").write_text(json.dumps(spec))
    borrowed = Scorer.open(other)
    assert borrowed.rule.threshold is None
    assert "belongs to other weights" in borrowed.describe_rule()
    with pytest.raises(CheckpointError, match="belongs to other weights"):
        Scorer.open(other, threshold="frozen")


def test_flattened_folder_and_tta(tiny_run, test_folder, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in (test_folder / "FAKE").glob("1*.jpg"):
        (flat / path.name).write_bytes(path.read_bytes())
    plain = prediction_table(Scorer.open(tiny_run, tta=False), flat).table
    tta = prediction_table(Scorer.open(tiny_run, tta=True), flat).table
    assert list(plain["filename"]) == sorted(p.name for p in flat.iterdir())
    assert (plain["error"] == "").all()
    assert not plain["prob_FAKE"].equals(tta["prob_FAKE"])  # the flipped view changes them
    # Unasked, predict does what the run validated and tested with (trainer.flip_tta, on).
    assert prediction_table(Scorer.open(tiny_run), flat).table["prob_FAKE"].equals(tta["prob_FAKE"])
