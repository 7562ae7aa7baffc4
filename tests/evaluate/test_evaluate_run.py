"""evaluate() on a real tiny run: metrics.json, the frozen threshold, figures, report, errors."""

from __future__ import annotations

import json
import shutil

import pytest

from realfake.data.embedded import embedded_data_path
from realfake.errors import CheckpointError, ConfigError, DataError
from realfake.evaluate.evaluation import evaluate
from realfake.evaluate.report import write_report

FIGURES = (
    "confusion_matrix",
    "roc",
    "precision_recall",
    "reliability",
    "mistakes",
    "risk_coverage",
    "per_source",
)


def test_metrics_json_holds_metrics_threshold_and_provenance(evaluated, tiny_run):
    record = json.loads((tiny_run / "metrics.json").read_text())
    m = record["metrics"]
    assert record["split"] == "test" and record["images"] == 200  # the embedded test split
    assert record["checkpoint"].endswith("best.ckpt")
    assert record["data_fingerprint"]
    # Nothing was frozen for the tiny run: it decides by arg-max, and says why.
    assert record["threshold"] is None and m["threshold"] is None
    assert record["decision"]["rule"] == "argmax"
    assert record["decision"]["text"] == "arg-max (no threshold was frozen for this model)"
    assert m["accuracy"] == m["accuracy_argmax"]
    assert m["classes"] == ["FAKE", "REAL"] and m["positive_class"] == "FAKE"
    assert sum(map(sum, m["confusion_matrix"])) == 200
    lo, hi = m["ci"]["accuracy"]
    assert lo <= m["accuracy"] <= hi
    assert m == json.loads(json.dumps(evaluated.record["metrics"]))


def test_every_figure_is_written_and_not_empty(evaluated, tiny_run):
    assert set(FIGURES) | {"learning_curves"} == set(evaluated.figures)
    for name, path in evaluated.figures.items():
        assert path.is_file() and path.stat().st_size > 5_000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert evaluated.figures["learning_curves"] == tiny_run / "figures" / "learning_curves.png"


def test_report_names_config_metrics_figures_fingerprint_and_commit(evaluated, tiny_run):
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    md = (tiny_run / "report.md").read_text()
    html = (tiny_run / "report.html").read_text()
    accuracy = f"{evaluated.metrics['accuracy']:.4f}"
    for text in (md, html):
        assert "fastnet" in text and accuracy in text
        assert manifest["data"]["fingerprint"] in text
        assert str(manifest["git"]["commit"] or "unknown") in text
        names = ("learning_curves", "confusion_matrix", "roc", "pr", "reliability", "mistakes")
        for name in (*names, "risk_coverage"):
            assert f"figures/{name}.png" in text
    assert html.startswith("<!doctype html>") and "<table>" in html
    assert write_report(tiny_run) == tiny_run / "report.md"  # refreshes without evaluating
    with pytest.raises(CheckpointError, match=r"no config\.yaml"):
        write_report(tiny_run / "checkpoints")


def test_any_labelled_folder_is_scored_with_the_runs_rule(evaluated, tiny_run, test_folder):
    with pytest.warns(UserWarning, match="could not be decoded"):
        other = evaluate(tiny_run, data=test_folder, figures=False, report=False, n_resamples=0)
    # A plain <class>/<image> folder is used whole; the two broken files are left out.
    assert other.record["split"] == "all" and other.record["images"] == 200
    assert other.record["skipped_files"] == 2
    assert other.out_dir == tiny_run / "evaluations" / "cifake-test-all"
    assert other.record["threshold"] == evaluated.record["threshold"]
    # Same images as the run's test split, same model: the same numbers.
    assert other.metrics["accuracy"] == evaluated.metrics["accuracy"]
    assert other.metrics["confusion_matrix"] == evaluated.metrics["confusion_matrix"]
    assert other.metrics["ci"] is None  # n_resamples=0: no interval, nothing else lost


def test_zero_resamples_skips_the_interval_and_keeps_the_report(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = evaluate(run, figures=False, n_resamples=0)
    assert result.metrics["ci"] is None
    text = result.report.read_text()
    assert "CI (not computed: 0 resamples)" in text and "Test accuracy" in text
    with pytest.raises(ConfigError, match="n_resamples=-1"):
        evaluate(run, figures=False, report=False, n_resamples=-1)


def test_class_names_that_do_not_match_are_a_clear_error(tiny_run, tmp_path):
    jpg = next((embedded_data_path() / "test" / "REAL").glob("*.jpg")).read_bytes()
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        (tmp_path / "pets" / name / "x.jpg").write_bytes(jpg)
    with pytest.raises(DataError) as info:
        evaluate(tiny_run, data=tmp_path / "pets", figures=False, report=False)
    message = str(info.value)
    assert "['cat', 'dog']" in message and "['FAKE', 'REAL']" in message


def test_cli_prints_the_table_and_writes_metrics(tiny_run, tmp_path, capsys):
    from realfake.cli import main

    code = main(
        [
            "evaluate",
            str(tiny_run),
            "--split",
            "val",
            "--out",
            str(tmp_path / "e"),
            "--no-figures",
            "--resamples",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "the run's val split" in out and "accuracy" in out and "confusion matrix" in out
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]["ci"] is None
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["images"] == 100
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "neither a checkpoint file nor a run directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("split", "named"), [("val", "train.tar"), ("train", "train.tar"), ("test", "test.tar")]
)
def test_own_split_names_the_file_it_comes_from(monkeypatch, split, named):
    # A run trained on train.tar and tested on test.tar: its val split is part of train.tar, and
    # the report must say so (it used to name test.tar for every split).
    from types import SimpleNamespace

    from realfake.inference import splits as sources

    splits = SimpleNamespace(train=[0], val=[0], test=[0], fingerprint="f", skipped=[])
    monkeypatch.setattr(sources, "run_splits", lambda predictor: splits)
    predictor = SimpleNamespace(config={"data": {"source": "train.tar", "test_source": "test.tar"}})
    images = sources.eval_images(predictor, None, split)
    assert images.where == f"the run's {split} split of {named}"


@pytest.mark.slow
def test_a_threshold_is_frozen_only_where_validation_supports_it(tiny_copy, capsys):
    """The tiny run has 50 validation images of each class: freezing is refused by default and
    the run keeps the arg-max, saying why; lowered deliberately, it freezes into model.json."""
    from realfake.cli import main

    before = (tiny_copy / "model.json").read_bytes()
    args = ["evaluate", str(tiny_copy), "--freeze-threshold", "youden", "--no-figures"]
    assert main([*args, "--resamples", "0"]) == 0
    out = capsys.readouterr().out
    assert "did not freeze a threshold" in out and "50 FAKE, 50 REAL" in out
    assert "at least 400 images of each class" in out and "arg-max" in out
    assert (tiny_copy / "model.json").read_bytes() == before
    record = json.loads((tiny_copy / "metrics.json").read_text())
    assert record["threshold"] is None and record["freeze"]["frozen"] is False

    assert main([*args, "--resamples", "0", "--min-val-per-class", "50"]) == 0
    assert "froze chosen on the run's validation split" in capsys.readouterr().out
    spec = json.loads((tiny_copy / "model.json").read_text())
    record = json.loads((tiny_copy / "metrics.json").read_text())
    assert spec["threshold"]["criterion"] == "youden"
    assert record["threshold"] == spec["threshold"]["value"]
    assert record["decision"]["origin"] == "frozen"
    # Later commands decide with it without choosing again: evaluate on another split says so.
    again = evaluate(tiny_copy, split="val", figures=False, report=False, n_resamples=0)
    assert again.record["threshold"] == spec["threshold"]["value"]
    assert again.record["decision"]["text"].startswith("P(FAKE) >= ")


@pytest.mark.slow
def test_evaluate_writes_per_image_decisions_and_logs_to_the_tracker(
    tiny_training, tiny_tracking_uri, tmp_path
):
    """predictions.csv holds the decisions the metrics count; the run's MLflow entry gets the
    metrics, the rule, the split and the data fingerprint, and the report as an artifact."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    run = tmp_path / "tiny"
    shutil.copytree(tiny_training[0].run_dir, run)
    result = evaluate(run, n_resamples=0, figures=False)
    table = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    assert len(table) == result.record["images"] == 200
    correct = (table["predicted"] == table["label"]).mean()
    assert correct == pytest.approx(result.metrics["accuracy"], abs=1e-12)
    run_id = json.loads((run / "tracking.json").read_text())["mlflow_run_id"]
    logged = MlflowClient(tracking_uri=tiny_tracking_uri).get_run(run_id)
    assert logged.data.metrics["eval/test/accuracy"] == pytest.approx(result.metrics["accuracy"])
    tags = logged.data.tags
    assert tags["eval/test/split"] == "test"
    assert tags["eval/test/data_fingerprint"] == result.record["data_fingerprint"]
    assert tags["eval/test/decision"].startswith("arg-max")
    artifacts = MlflowClient(tracking_uri=tiny_tracking_uri).list_artifacts(run_id, "eval/test")
    assert {"metrics.json", "report.md"} <= {a.path.rsplit("/", 1)[-1] for a in artifacts}
