"""Study tables at real budgets: a study survives Ctrl-C, refuses another plan, tests its arms.

One 2-arm × 2-seed study of tiny runs is interrupted by Ctrl-C in its third run, loses a finished
run folder, and is continued once for the whole module; the table's paired tests are also
checked on constructed per-image results, without training.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pandas as pd
import pytest

from realfake.errors import CheckpointError, ConfigError
from realfake.evaluate.significance import binomial_two_sided
from realfake.studies import study as study_module
from realfake.studies.comparison import (
    DELTA_HEADER,
    NUMERIC,
    P_BOOTSTRAP_HEADER,
    P_MCNEMAR_HEADER,
    Correctness,
    summarise,
    versus_best,
    write_tables,
)
from realfake.studies.study import Study, StudyInterrupted, continue_study, run_study

ARMS = {"plain": ["model.dropout=0.0"], "dropout": ["model.dropout=0.5"]}
# Two epochs (so a run can stop between them) of one batch of 16 images.
OVERRIDES = ["trainer.limit_train_batches=1", "data.batch_size=16"]
SEEDS = 2


class CtrlC(L.Callback):
    """Ctrl-C as a user presses it: at the first batch of the second epoch."""

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.current_epoch >= 1:
            raise KeyboardInterrupt


def interrupting(run_name: str):
    """study.train, with Ctrl-C in the run ``run_name``."""
    real = study_module.train

    def train(config=None, *, resume=None, callbacks=None):
        if config is not None and config.name == run_name:
            callbacks = [CtrlC()]
        return real(config, resume=resume, callbacks=callbacks)

    return train


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def continued(tmp_path_factory, data_cache, tiny_overrides):
    """The study: interrupted in dropout-s0, plain-s1's folder deleted, then continued."""
    study = Study("tiny", ARMS, common=tiny_overrides)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study_module, "train", interrupting("dropout-s0"))
        with pytest.raises(StudyInterrupted) as stopped:
            run_study(study, SEEDS, OVERRIDES, tmp_path_factory.mktemp("studies"))
    out = stopped.value.study_dir
    runs = out / "runs"
    before = {
        "plain-s0": {p.name: fingerprint(p) for p in (runs / "plain-s0" / "checkpoints").iterdir()},
        "dropout-s0 metrics": pd.read_csv(runs / "dropout-s0" / "metrics.csv"),
        "dropout-s0 manifest": json.loads((runs / "dropout-s0" / "manifest.json").read_text()),
        "existing": sorted(p.name for p in runs.iterdir()),
    }
    shutil.rmtree(runs / "plain-s1")  # a finished run lost
    result = run_study(study, SEEDS, OVERRIDES, resume=out)
    return SimpleNamespace(study=study, stopped=stopped.value, before=before, result=result)


@pytest.mark.slow  # trains five tiny runs and a half
def test_interrupted_study_continues_and_trains_only_what_is_missing(continued):
    out = continued.result.out_dir
    assert out == continued.stopped.study_dir
    assert f"realfake compare --resume {out}" in str(continued.stopped)
    # Ctrl-C hit the third run: the fourth was never started.
    assert continued.before["existing"] == ["dropout-s0", "plain-s0", "plain-s1"]
    record = json.loads((out / "study.json").read_text())
    first, second = record["sessions"]
    assert first["trained"] == ["plain-s0", "plain-s1"] and not first["resumed"]
    assert second["reused"] == ["plain-s0"]
    assert second["resumed"] == ["dropout-s0"]
    assert second["trained"] == ["plain-s1", "dropout-s1"]
    # The reused run was not touched: same checkpoint bytes, same modification times.
    checkpoints = out / "runs" / "plain-s0" / "checkpoints"
    assert {p.name: fingerprint(p) for p in checkpoints.iterdir()} == continued.before["plain-s0"]
    # The interrupted run went on from its last checkpoint rather than starting over.
    manifest = json.loads((out / "runs" / "dropout-s0" / "manifest.json").read_text())
    assert continued.before["dropout-s0 manifest"]["status"] == "interrupted"
    assert manifest["status"] == "finished" and manifest["previous_status"] == "interrupted"
    assert len(manifest["resumed"]) == 1
    assert manifest["started"] == continued.before["dropout-s0 manifest"]["started"]
    history = pd.read_csv(out / "runs" / "dropout-s0" / "metrics.csv")
    assert history["epoch"].tolist() == [0, 1]
    pd.testing.assert_frame_equal(history.iloc[:1], continued.before["dropout-s0 metrics"])
    # Every run is in the table, and the note states the study's cost.
    runs = pd.read_csv(out / "runs.csv")
    assert runs["run"].tolist() == ["plain-s0", "plain-s1", "dropout-s0", "dropout-s1"]
    assert record["train_time_s"] == pytest.approx(runs["train_time_s"].sum(), rel=1e-5)
    assert record["finished"] and all(s["wall_s"] > 0 for s in record["sessions"])
    md = (out / "table.md").read_text()
    assert "the sum of the 4 runs' train_time_s" in md and "in 2 sessions" in md


@pytest.mark.slow
def test_continuing_with_another_plan_is_refused_naming_the_difference(continued, tmp_path):
    out = continued.result.out_dir
    plan = (out / "study.json").read_bytes()
    study = continued.study
    with pytest.raises(ConfigError, match=r"--seeds: 2 when started, 3 now"):
        run_study(study, 3, OVERRIDES, resume=out)
    with pytest.raises(ConfigError, match=r"overrides: .*'trainer.max_epochs=3'\] now"):
        run_study(study, SEEDS, [*OVERRIDES, "trainer.max_epochs=3"], resume=out)
    other = Study("tiny", {**ARMS, "dropout": ["model.dropout=0.3"]}, common=study.common)
    with pytest.raises(ConfigError, match=r"arm 'dropout': \['model.dropout=0.5'\] when started"):
        run_study(other, SEEDS, OVERRIDES, resume=out)
    assert (out / "study.json").read_bytes() == plan  # a refused session changes nothing
    # The same request composing differently (a default changed since the study started).
    moved = tmp_path / "moved"
    moved.mkdir()
    stored = json.loads(plan)
    stored["runs"][0]["config"]["optim.lr"] = 0.123
    (moved / "study.json").write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match=r"run plain-s0 composes differently: optim.lr 0.123"):
        continue_study(moved)
    with pytest.raises(CheckpointError, match="not a study folder"):
        continue_study(tmp_path)


@pytest.mark.slow
def test_cli_resume_alone_continues_as_planned(continued, tmp_path, capsys):
    from realfake.cli import main

    # A copy: the study folder may move between sessions (runs_dir is not part of the plan).
    out = Path(shutil.copytree(continued.result.out_dir, tmp_path / "study"))
    assert main(["compare", "--resume", str(out)]) == 0  # all finished: nothing trains
    record = json.loads((out / "study.json").read_text())
    assert len(record["sessions"]) == 3
    assert record["sessions"][-1]["reused"] == [
        "plain-s0",
        "plain-s1",
        "dropout-s0",
        "dropout-s1",
    ]
    assert "reference (best test acc)" in capsys.readouterr().out
    assert main(["compare", "--resume", str(out), "--seeds", "2"]) == 2
    assert "repeat its study=NAME" in capsys.readouterr().err
    assert main(["compare", "--resume", str(out), "study=tiny", "--out", "x"]) == 2
    assert "do not apply" in capsys.readouterr().err


@pytest.mark.slow
def test_table_tests_every_arm_against_the_best(continued):
    result = continued.result
    table = pd.read_csv(result.out_dir / "table.csv", keep_default_na=False)
    best = table["test_acc_mean"].astype(float).idxmax()
    other = 1 - best
    assert table.at[best, "versus_best"] == "reference"
    assert table.at[other, "versus_best"] == ""
    row = table.iloc[other]
    # The per-image decisions are the test acc column's: Δ is the difference of its means.
    delta = float(row["delta_acc"])
    assert delta == pytest.approx(row["test_acc_mean"] - table.at[best, "test_acc_mean"], abs=1e-6)
    assert float(row["delta_acc_low"]) <= delta <= float(row["delta_acc_high"])
    assert 0 < float(row["p_bootstrap"]) <= 1
    # McNemar per seed pair (seed s against seed s), the largest shown.
    per_seed = dict(item.split(":") for item in row["p_mcnemar_seeds"].split(";"))
    assert sorted(per_seed) == ["0", "1"]
    assert float(row["p_mcnemar"]) == pytest.approx(max(map(float, per_seed.values())))
    runs, correct = result.runs, result.correctness
    for seed, p in per_seed.items():
        a, b = (
            correct[
                runs.index[(runs["arm"] == table.at[i, "arm"]) & (runs["seed"] == int(seed))][0]
            ]
            for i in (other, best)
        )
        only_a = int((a.correct & ~b.correct).sum())
        only_b = int((~a.correct & b.correct).sum())
        assert float(p) == pytest.approx(binomial_two_sided(only_a, only_a + only_b), rel=1e-5)
    md = (result.out_dir / "table.md").read_text()
    for header in (DELTA_HEADER, P_BOOTSTRAP_HEADER, P_MCNEMAR_HEADER):
        assert header in md
    best_line = next(
        line for line in md.splitlines() if line.startswith(f"| {table.at[best, 'arm']} |")
    )
    assert "reference (best test acc)" in best_line
    assert "paired-bootstrap" in md and "McNemar 1947" in md


# --- the tests on constructed per-image results (no training) ---------------------------------


def constructed(
    correct: dict[str, np.ndarray], images: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[Correctness]]:
    """A runs table and per-image results from ``{"arm-sSEED": correctness}``."""
    rows, results = [], []
    for name, right in correct.items():
        arm, seed = name.rsplit("-s", 1)
        row = dict.fromkeys(NUMERIC, 1.0)
        row.update(arm=arm, run=name, seed=int(seed), test_acc=float(right.mean()))
        rows.append(row)
        results.append(Correctness(right.astype(bool), (images or {}).get(name, "same images")))
    return pd.DataFrame(rows), results


def test_mcnemar_column_is_the_exact_binomial_of_a_constructed_example(tmp_path):
    n = 100
    best = np.ones(n, dtype=bool)
    best[:10] = False  # 90 % right
    worse = best.copy()
    worse[:2] = True  # right on 2 images the best arm misses...
    worse[20:28] = False  # ...wrong on 8 it gets right: 84 %
    runs, correct = constructed({"best-s0": best, "worse-s0": worse})
    table = versus_best(summarise(runs), runs, correct)
    row = table.set_index("arm").loc["worse"]
    assert row["p_mcnemar"] == 2 * (1 + 10 + 45) / 2**10  # P(X <= 2 | 10, 1/2), two-sided
    assert row["delta_acc"] == pytest.approx(0.84 - 0.90)
    assert row["p_mcnemar_seeds"] == "0:0.109375"
    assert table.set_index("arm").at["best", "versus_best"] == "reference"


def test_seeds_pair_by_seed_and_the_largest_p_is_shown():
    n = 60
    rng = np.random.default_rng(0)
    reference = {s: rng.random(n) < 0.9 for s in (0, 1)}
    arm = {0: reference[0].copy(), 1: reference[1].copy()}
    arm[0][:20] = False  # seed 0: clearly worse; seed 1: identical decisions (p = 1)
    # The arm's runs listed in the other seed order: pairing goes by seed, not by position.
    runs, correct = constructed(
        {"ref-s0": reference[0], "ref-s1": reference[1], "arm-s1": arm[1], "arm-s0": arm[0]}
    )
    row = versus_best(summarise(runs), runs, correct).set_index("arm").loc["arm"]
    assert row["p_mcnemar_seeds"].startswith("1:1;0:")
    assert row["p_mcnemar"] == 1.0
    assert row["delta_acc"] == pytest.approx(
        (arm[0].mean() + arm[1].mean()) / 2 - 0.5 * sum(r.mean() for r in reference.values())
    )


def test_arms_on_different_test_images_are_not_tested(tmp_path):
    a = np.ones(50, dtype=bool)
    runs, correct = constructed(
        {"a-s0": a, "b-s0": a.copy(), "c-s0": a[:40]},
        images={"a-s0": "cifake", "b-s0": "cifake", "c-s0": "another set"},
    )
    correct[1] = Correctness(None, why="its test images cannot be rebuilt here (gone)")
    table = versus_best(summarise(runs), runs, correct)
    status = dict(zip(table["arm"], table["versus_best"], strict=True))
    assert status == {
        "a": "reference",
        "b": "n/a: no per-image results for b-s0: its test images cannot be rebuilt here (gone)",
        "c": "n/a: not scored on the same test images",
    }
    assert table["p_mcnemar"].isna().all() and table["delta_acc"].isna().all()
    md = write_tables(table, tmp_path, "t")["md"].read_text()
    assert "| c | 1 |" in md and "n/a: not scored on the same test images" in md


@pytest.mark.slow
def test_a_run_evaluated_for_the_table_is_scored_once(tiny_copy, monkeypatch):
    """A study's runs are evaluated when collected; that evaluation gives the per-image results
    too, and they are those rebuilt later for an already evaluated run."""
    from realfake.inference import Predictor
    from realfake.runs import RunDir
    from realfake.studies.comparison import run_scores

    RunDir(tiny_copy).evaluation.unlink(missing_ok=True)
    sizes: list[int] = []
    real = Predictor.probabilities

    def counting(self, images, *args, **kwargs):
        sizes.append(len(images))
        return real(self, images, *args, **kwargs)

    monkeypatch.setattr(Predictor, "probabilities", counting)
    row, fresh = run_scores(tiny_copy)
    tests = json.loads(RunDir(tiny_copy).evaluation.read_text())["images"]  # written by it
    assert sizes == [tests]  # the test split once: nothing chooses a threshold on validation
    assert fresh.correct is not None and fresh.correct.mean() == pytest.approx(row["test_acc"])
    sizes.clear()
    # Evaluated now: its per-image decisions are read back from predictions.csv, not re-scored.
    _, again = run_scores(tiny_copy)
    assert sizes == []
    assert np.array_equal(again.correct, fresh.correct) and again.images == fresh.images
