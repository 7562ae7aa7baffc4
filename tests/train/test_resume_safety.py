"""Resuming never destroys: a finished run stays byte for byte, a frozen threshold survives."""

from __future__ import annotations

import json
from pathlib import Path

from realfake.cli import main
from realfake.runs import FrozenThreshold, RunDir, file_sha256
from realfake.runs.rundir import read_run_spec, write_run_spec


def _freeze(run: RunDir, sha256: str, value: float = 0.42) -> FrozenThreshold:
    """Write a frozen threshold into model.json as `realfake evaluate` would."""
    spec = read_run_spec(run)
    assert spec is not None
    frozen = FrozenThreshold(value, True, "accuracy", "val split, 100 images", sha256)
    write_run_spec(run, spec.with_threshold(frozen))
    return frozen


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_resuming_a_finished_run_changes_none_of_its_files(tiny_copy, caplog):
    run = RunDir(tiny_copy)
    frozen = _freeze(run, file_sha256(run.best))
    # What an evaluation and a report leave in a run: they describe its files as they are.
    (run.path / "evaluations" / "other-test").mkdir(parents=True)
    (run.path / "evaluations" / "other-test" / "metrics.json").write_text('{"images": 10}\n')
    (run.path / "report.md").write_text("# tiny\n")
    (run.path / "report.html").write_text("<h1>tiny</h1>\n")
    before = _snapshot(run.path)

    assert main(["train", "--resume", str(run.path)]) == 0
    assert "finished its training already" in caplog.text and "another name" in caplog.text
    assert _snapshot(run.path) == before  # every file: same bytes, same mtime
    spec = json.loads(run.spec.read_text())
    assert spec["threshold"]["value"] == frozen.value
    assert not (run.path / ".lock").exists()


def test_a_threshold_frozen_for_the_runs_weights_survives_a_rewrite_of_model_json(tiny_copy):
    run = RunDir(tiny_copy)
    spec = read_run_spec(run)
    assert spec is not None and spec.threshold is None
    frozen = _freeze(run, file_sha256(run.best))
    # Training rewrites model.json from a spec without a threshold: the frozen one is kept...
    write_run_spec(run, spec)
    kept = read_run_spec(run)
    assert kept is not None and kept.threshold == frozen
    # ...but not one chosen for other weights, which would decide with the wrong cut.
    _freeze(run, "0" * 64)
    write_run_spec(run, spec)
    dropped = read_run_spec(run)
    assert dropped is not None and dropped.threshold is None
