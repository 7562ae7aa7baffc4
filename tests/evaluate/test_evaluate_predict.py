"""predict(): the CSV a user gets for a folder of images, error rows included; agreement."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from realfake.errors import CheckpointError
from realfake.evaluate import predict, saved_threshold

COLUMNS = ["filename", "label", "label_index", "prob_FAKE", "prob_REAL", "error"]


def _accuracy_from_folder_names(table: pd.DataFrame) -> float:
    good = table[table["error"] == ""]
    truth = good["filename"].str.split("/").str[0]  # FAKE/x.jpg -> FAKE
    return float((good["label"] == truth).mean())


def test_prediction_csv_has_one_row_per_file_and_error_rows(tiny_run, test_folder, tmp_path):
    from realfake.cli import main

    out = tmp_path / "predictions.csv"
    assert main(["predict", str(tiny_run), str(test_folder), "--out", str(out)]) == 0
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


def test_predict_agrees_with_evaluate_on_the_same_folder(evaluated, tiny_run, test_folder):
    # Arg-max labels score evaluate's accuracy_argmax; the frozen threshold scores its accuracy.
    argmax = predict(tiny_run, test_folder)
    assert _accuracy_from_folder_names(argmax) == pytest.approx(
        evaluated.metrics["accuracy_argmax"]
    )
    frozen = predict(tiny_run, test_folder, threshold=saved_threshold(tiny_run))
    assert _accuracy_from_folder_names(frozen) == pytest.approx(evaluated.metrics["accuracy"])


def test_flattened_folder_and_tta(tiny_run, test_folder, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in (test_folder / "FAKE").glob("1*.jpg"):
        (flat / path.name).write_bytes(path.read_bytes())
    plain = predict(tiny_run, flat, tta=False)
    tta = predict(tiny_run, flat, tta=True)
    assert list(plain["filename"]) == sorted(p.name for p in flat.iterdir())
    assert (plain["error"] == "").all()
    assert not plain["prob_FAKE"].equals(tta["prob_FAKE"])  # the flipped view changes them
    # Unasked, predict does what the run validated and tested with (trainer.flip_tta, on).
    assert predict(tiny_run, flat)["prob_FAKE"].equals(tta["prob_FAKE"])


def test_evaluate_scores_the_test_split_as_training_did(tiny_run, evaluated):
    """Same images, same flip TTA (the run's): evaluate's arg-max accuracy is training's."""
    trained = json.loads((tiny_run / "results.json").read_text())["metrics"]
    assert evaluated.record["tta"] is True
    assert evaluated.metrics["accuracy_argmax"] == pytest.approx(trained["test_acc"], abs=1e-9)


def test_frozen_threshold_needs_an_evaluation_of_that_checkpoint(tiny_run):
    with pytest.raises(CheckpointError, match="was computed for"):
        saved_threshold(tiny_run / "checkpoints" / "last.ckpt")
