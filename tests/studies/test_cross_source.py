"""The cross-source table: every run scored on every source's test split."""

from __future__ import annotations

import pytest

from realfake.errors import RealfakeError
from realfake.studies.cross_source import cross_source_table, write_cross_source
from realfake.studies.study import load_study


@pytest.mark.slow
def test_each_cell_is_the_runs_own_evaluation_of_that_source(tiny_run, evaluated, tmp_path):
    other = [
        f"data.source={tmp_path / 'missing'}",
    ]
    with pytest.raises(RealfakeError, match="missing"):
        cross_source_table([tiny_run], ["tiny"], {"other": other})
    # The embedded set's own test split, named twice: identical cells, equal to evaluate's.
    runs, summary = cross_source_table(
        [tiny_run, tiny_run], ["tiny", "tiny"], {"embedded": [], "again": ["data.split_seed=0"]}
    )
    assert len(runs) == 4 and set(summary["test"]) == {"embedded", "again"}
    cell = runs.iloc[0]
    assert cell["n"] == 200
    assert cell["accuracy"] == pytest.approx(evaluated.metrics["accuracy"])
    assert cell["roc_auc"] == pytest.approx(evaluated.metrics["roc_auc"])
    assert cell["roc_auc_lo"] <= cell["roc_auc"] <= cell["roc_auc_hi"]
    row = summary.iloc[0]
    assert row["seeds"] == 2 and row["roc_auc_std"] == 0.0
    md = write_cross_source(summary, runs, tmp_path).read_text()
    assert "trained on" in md and "embedded" in md and "again" in md
    assert (tmp_path / "cross_source.csv").is_file() and (tmp_path / "cross_source.html").is_file()


def test_the_shipped_cross_source_study_names_its_arms_and_test_sources():
    study = load_study("cross_source")
    assert list(study.arms) == [
        "recipe_cifake",
        "patch_faces",
        "npr_faces",
        "whole_faces",
        "whole_both",
        "patch_both",
        "npr_both",
    ]
    assert study.test_on == {"cifake": ["data=cifake_sample"], "faces": ["data=faces_256"]}
