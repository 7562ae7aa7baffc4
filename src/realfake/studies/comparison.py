"""Compare finished runs: one row per run (or mean ± std per arm), written as MD, CSV and HTML.

Test figures come from ``evaluate`` on each run's own test split (reused from its metrics.json
and per-image predictions.csv when they scored the same checkpoint with the same rule);
validation figures are the epoch of the checkpoint, i.e. the best epoch by the run's monitored
metric, so every column describes the same weights.
Arms scored on the same test images are also tested against the best arm, image by image
(``realfake.evaluate.significance``), with the decisions the test acc column counts.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from realfake.atomic import write_text
from realfake.errors import CheckpointError
from realfake.evaluate.evaluation import PREDICTIONS, evaluate
from realfake.evaluate.figures import plot_study_curves
from realfake.evaluate.markup import Document, Paragraph, Table
from realfake.evaluate.significance import mcnemar_exact, paired_bootstrap
from realfake.inference import Scorer
from realfake.models import count_macs, count_params
from realfake.runs import RunDir, read_json

# (column, header, format) of the comparison table, in order.
COLUMNS = (
    ("val_loss", "val loss", "{:.4f}"),
    ("val_acc", "val acc", "{:.4f}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("test_acc", "test acc", "{:.4f}"),
    ("test_acc_argmax", "test acc (arg-max)", "{:.4f}"),
    ("precision", "precision", "{:.4f}"),
    ("recall", "recall", "{:.4f}"),
    ("f1", "F1", "{:.4f}"),
    ("params_m", "params (M)", "{:.2f}"),
    ("macs_g", "MACs (G)", "{:.3f}"),
    ("train_time_s", "train time (s)", "{:.0f}"),
    ("images_per_s", "images/s", "{:.0f}"),
)
NUMERIC = [c for c, _, _ in COLUMNS]
READING = (
    "Validation columns: the epoch of the evaluated checkpoint (arg-max accuracy). Test columns: "
    "each run's test split, decided by each run's rule (a threshold frozen on validation, else "
    "the arg-max; the arg-max accuracy beside it); precision, recall and F1 are macro averages."
)
# The paired tests against the best arm: resamples and seed of the bootstrap (fixed, so a table
# is reproducible; 2,000 resamples put the 2.5 % and 97.5 % quantiles ~50 resamples deep).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
# (header, where the cell goes: after this COLUMNS key) of the significance columns.
DELTA_HEADER = "Δ test acc vs best [95% CI]"
P_BOOTSTRAP_HEADER = "p (bootstrap)"
P_MCNEMAR_HEADER = "McNemar p (largest over seeds)"
SIGNIFICANCE_READING = (
    "Δ test acc vs best: the arm's mean test accuracy minus that of the best arm (the highest "
    "mean test acc, marked reference), with a 95% paired-bootstrap percentile interval over the "
    f"test images ({BOOTSTRAP_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}; both arms scored "
    "on the same resampled images, each arm's per-image correctness averaged over its seeds; "
    "Efron & Tibshirani 1993) and its two-sided p-value, read off the same resamples. The "
    "interval covers which test images were drawn, not the spread between seeds (the ± shows "
    "that). McNemar p: exact McNemar test (McNemar 1947; two-sided binomial on the images only "
    "one of the two runs gets right) between runs of the same seed; the largest p over the "
    "seed pairs is shown, so the difference holds at that level in every seed (each seed's p "
    "is in table.csv). Neither p is corrected for the comparisons with the other arms, and the "
    "reference was chosen as the best on these same images: read small p-values as a screen, "
    "not as a confirmed ranking. n/a: the two arms were not scored on the same test images."
)


@dataclass(frozen=True)
class Correctness:
    """One run's 0/1 correctness per test image, and which images (in order) those are."""

    correct: np.ndarray | None  # bool per test image; None when it could not be computed
    images: str = ""  # SHA-256 of the test images' identity (files' MD5 else pixels) and labels
    why: str = ""  # why ``correct`` is None


@dataclass
class Collected:
    """The runs of a comparison, before tabulating: one row and one Correctness per run."""

    runs: pd.DataFrame
    correctness: list[Correctness]


@dataclass
class Comparison:
    out_dir: Path
    runs: pd.DataFrame  # one row per run
    table: pd.DataFrame  # one row per arm: <column>_mean, <column>_std, seeds, tests vs best
    files: dict[str, Path] = field(default_factory=dict)
    correctness: list[Correctness] = field(default_factory=list)  # per run, as ``runs``


def _own_test_scores(
    scorer: Scorer, run: RunDir, reevaluate: bool
) -> tuple[dict[str, Any], Correctness]:
    """The run's test-split evaluation record and per-image correctness: its metrics.json and
    predictions.csv when they scored these weights with this rule, else a new evaluation."""
    record = read_json(run.evaluation)
    if not reevaluate and _fresh(record, scorer):
        table = pd.read_csv(run.path / PREDICTIONS, keep_default_na=False)
        if len(table) == record["images"]:
            correct = (table["predicted"] == table["label"]).to_numpy()
            return record, Correctness(correct, record["images_identity"])
    result = evaluate(scorer, figures=True)
    return result.record, Correctness(result.correct, result.images_identity)


def _fresh(record: dict[str, Any], scorer: Scorer) -> bool:
    """Whether an evaluation record is of the run's own test split, these weights and rule."""
    decision = record.get("decision") or {}
    return bool(
        record
        and record.get("data_source") is None
        and record.get("split") == "test"
        and record.get("checkpoint_sha256") == scorer.sha256
        and record.get("tta") == scorer.tta
        and decision.get("threshold") == scorer.rule.threshold
        and record.get("images_identity")
    )


def _checkpoint_epoch(run: RunDir, config: dict[str, Any]) -> dict[str, float]:
    """val loss and accuracy of the epoch whose weights best.ckpt holds."""
    history = pd.read_csv(run.metrics_csv) if run.metrics_csv.is_file() else pd.DataFrame()
    es = config.get("early_stopping", {})
    column = es.get("monitor", "val/loss").replace("/", "_")
    if history.empty or column not in history or history[column].isna().all():
        return {"val_loss": math.nan, "val_acc": math.nan}
    # idxmin/idxmax keep the first of equal values, as ModelCheckpoint keeps the first best.
    row = history.loc[
        history[column].idxmax() if es.get("mode") == "max" else history[column].idxmin()
    ]
    return {"val_loss": float(row["val_loss"]), "val_acc": float(row["val_acc"])}


def run_row(run_dir: str | Path, reevaluate: bool = False) -> dict[str, Any]:
    """One comparison row: validation and test metrics, size, cost and speed of a run."""
    return run_scores(run_dir, reevaluate)[0]


def run_scores(run_dir: str | Path, reevaluate: bool = False) -> tuple[dict[str, Any], Correctness]:
    """A run's comparison row and its per-image correctness on its test split."""
    run = RunDir(Path(run_dir))
    if not run.is_run():
        raise CheckpointError(f"{run.path} is not a realfake run directory: it has no config.yaml")
    scorer = Scorer.open(run.path)
    predictor = scorer.torch_predictor("a comparison counts the network's parameters")
    record, correctness = _own_test_scores(scorer, run, reevaluate)
    test = record["metrics"]
    if correctness.correct is not None and not math.isclose(
        float(correctness.correct.mean()), test["accuracy"], abs_tol=1e-9
    ):
        warnings.warn(
            f"{run.path}: per-image decisions give test accuracy {correctness.correct.mean():.4f},"
            f" its evaluation {test['accuracy']:.4f} (evaluated on other hardware?); the tests "
            "against the best arm use the former",
            RuntimeWarning,
            stacklevel=2,
        )
    config = predictor.config
    results = read_json(run.results).get("metrics", {})
    manifest = read_json(run.manifest)
    row = {
        "run": run.name,
        "path": str(run.path),
        "model": predictor.spec.model,
        "seed": config.get("seed"),
        **_checkpoint_epoch(run, config),
        "test_loss": test["log_loss"],
        "test_acc": test["accuracy"],
        "test_acc_argmax": test["accuracy_argmax"],
        "precision": test["precision_macro"],
        "recall": test["recall_macro"],
        "f1": test["f1_macro"],
        "params_m": count_params(predictor.model) / 1e6,
        "macs_g": count_macs(predictor.model, predictor.image_size) / 1e9,
        "train_time_s": float(manifest.get("train_time_s", math.nan)),
        "images_per_s": float(results.get("images_per_s", math.nan)),
    }
    return row, correctness


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over seeds) of every numeric column, per arm."""
    grouped = runs.groupby("arm", sort=False)[NUMERIC]
    table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    table = table[[f"{c}_{s}" for c in NUMERIC for s in ("mean", "std")]]
    table.insert(0, "seeds", runs.groupby("arm", sort=False).size())
    return table.reset_index()


def versus_best(
    table: pd.DataFrame, runs: pd.DataFrame, correctness: list[Correctness]
) -> pd.DataFrame:
    """The table with every arm tested against the best arm (highest mean test acc), paired.

    New columns: versus_best ("reference", "" when tested, "n/a: why"), delta_acc with its
    interval delta_acc_low/high and p_bootstrap (paired bootstrap over the test images of the
    seed-averaged per-image correctness), p_mcnemar (the largest of the seed pairs' exact
    McNemar p-values) and p_mcnemar_seeds ("seed:p" of every pair).
    """
    out = table.copy()
    out["versus_best"] = ""
    for column in ("delta_acc", "delta_acc_low", "delta_acc_high", "p_bootstrap", "p_mcnemar"):
        out[column] = math.nan
    out["p_mcnemar_seeds"] = ""
    accuracy = out["test_acc_mean"]
    if accuracy.isna().all():
        out["versus_best"] = "n/a: no test accuracy"
        return out
    best = int(accuracy.to_numpy().argmax())  # the first of equal best, in table order
    members = {arm: np.flatnonzero(runs["arm"].to_numpy() == arm).tolist() for arm in out["arm"]}
    reference = members[out.at[best, "arm"]]
    for i, arm in enumerate(out["arm"]):
        if i == best:
            out.at[i, "versus_best"] = "reference"
            continue
        why = _why_not_paired(runs, correctness, members[arm], reference)
        if why:
            out.at[i, "versus_best"] = f"n/a: {why}"
            continue
        boot = paired_bootstrap(
            _seed_mean(correctness, members[arm]),
            _seed_mean(correctness, reference),
            BOOTSTRAP_RESAMPLES,
            BOOTSTRAP_SEED,
            LEVEL,
        )
        seeds = runs["seed"].tolist()
        mcnemar = [
            (seeds[j], mcnemar_exact(correctness[j].correct, correctness[k].correct).p)
            for j, k in _seed_pairs(seeds, members[arm], reference)
        ]
        out.at[i, "delta_acc"] = boot.delta
        out.at[i, "delta_acc_low"] = boot.low
        out.at[i, "delta_acc_high"] = boot.high
        out.at[i, "p_bootstrap"] = boot.p
        out.at[i, "p_mcnemar"] = max(p for _, p in mcnemar)
        out.at[i, "p_mcnemar_seeds"] = ";".join(f"{seed}:{p:.6g}" for seed, p in mcnemar)
    return out


def _why_not_paired(
    runs: pd.DataFrame, correctness: list[Correctness], arm: list[int], reference: list[int]
) -> str:
    """Why two arms cannot be compared image by image ('' when they can)."""
    for k in [*arm, *reference]:
        if correctness[k].correct is None:
            return f"no per-image results for {runs['run'].iat[k]}: {correctness[k].why}"
    if len({correctness[k].images for k in [*arm, *reference]}) > 1:
        return "not scored on the same test images"
    return ""


def _seed_mean(correctness: list[Correctness], members: list[int]) -> np.ndarray:
    """Per-image correctness averaged over an arm's runs (its seeds)."""
    return np.mean([correctness[k].correct for k in members], axis=0)


def _seed_pairs(seeds: list[Any], arm: list[int], reference: list[int]) -> list[tuple[int, int]]:
    """(run of the arm, run of the reference) with the same seed, each run used once.

    Arms without a seed in common (two collected runs, say) pair in the order given.
    """
    free = list(reference)
    pairs = []
    for j in arm:
        match = next((k for k in free if seeds[k] == seeds[j]), None)
        if match is not None:
            free.remove(match)
            pairs.append((j, match))
    return pairs or list(zip(arm, reference, strict=False))


def _cell(row: pd.Series, column: str, form: str) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    if pd.isna(mean):
        return "–"
    text = form.format(mean)
    return f"{text} ± {form.format(std)}" if row["seeds"] > 1 and not pd.isna(std) else text


def _p(value: float) -> str:
    if pd.isna(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _versus_cells(row: pd.Series) -> list[str]:
    """The Δ [CI], bootstrap p and McNemar p cells of one arm."""
    status = row["versus_best"]
    if status == "reference":
        return ["reference (best test acc)", "–", "–"]
    if status:
        return [status, "–", "–"]
    delta = f"{row['delta_acc']:+.4f} [{row['delta_acc_low']:+.4f}, {row['delta_acc_high']:+.4f}]"
    return [delta, _p(row["p_bootstrap"]), _p(row["p_mcnemar"])]


def write_tables(table: pd.DataFrame, out_dir: Path, title: str, note: str = "") -> dict[str, Path]:
    """table.csv (numbers), table.md and table.html (mean ± std as text).

    With two arms or more and ``versus_best``'s columns, the tests against the best arm stand
    right after the test acc column.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "table.csv"
    write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    tested = len(table) > 1 and "versus_best" in table
    at = [c for c, _, _ in COLUMNS].index("test_acc") + 1
    headers = [h for _, h, _ in COLUMNS]
    if tested:
        headers[at:at] = [DELTA_HEADER, P_BOOTSTRAP_HEADER, P_MCNEMAR_HEADER]
    rows = []
    for _, row in table.iterrows():
        cells = [_cell(row, c, f) for c, _, f in COLUMNS]
        if tested:
            cells[at:at] = _versus_cells(row)
        rows.append([row["arm"], int(row["seeds"]), *cells])
    reading = f"{READING} {SIGNIFICANCE_READING}" if tested else READING
    doc = Document(title)
    doc.add(Paragraph(f"{note} {reading}".strip()), Table(["arm", "seeds", *headers], rows))
    md = doc.write(out_dir / "table.md")
    return {"csv": csv_path, "md": md, "html": md.with_suffix(".html")}


def collect(
    run_dirs: list[str | Path], arms: list[str] | None = None, reevaluate: bool = False
) -> Collected:
    """Every run's row and per-image correctness (evaluating runs not yet evaluated)."""
    if not run_dirs:
        raise CheckpointError("no runs to compare; pass run directories")
    scored = [run_scores(r, reevaluate) for r in run_dirs]
    runs = pd.DataFrame([row for row, _ in scored])
    runs.insert(0, "arm", arms if arms is not None else runs["run"])
    return Collected(runs, [c for _, c in scored])


def tabulate(
    collected: Collected, out_dir: str | Path, title: str = "comparison", note: str = ""
) -> Comparison:
    """The table (mean ± std per arm, tests against the best arm), runs.csv and curves.png."""
    out, runs = Path(out_dir), collected.runs
    table = versus_best(summarise(runs), runs, collected.correctness)
    files = write_tables(table, out, title, note)
    write_text(out / "runs.csv", runs.to_csv(index=False, float_format="%.6g"))
    files["runs"] = out / "runs.csv"
    histories = {
        arm: [
            pd.read_csv(RunDir(Path(p)).metrics_csv)
            for p in group["path"]
            if RunDir(Path(p)).metrics_csv.is_file()
        ]
        for arm, group in runs.groupby("arm", sort=False)
    }
    files["curves"] = plot_study_curves(histories, out / "curves.png")
    return Comparison(out, runs, table, files, collected.correctness)


def compare(
    run_dirs: list[str | Path],
    out_dir: str | Path | None = None,
    arms: list[str] | None = None,
    title: str = "comparison",
    note: str = "",
    reevaluate: bool = False,
) -> Comparison:
    """Collect finished runs into one table; runs sharing an arm name are averaged over seeds."""
    out = Path(out_dir) if out_dir else Path("studies") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    return tabulate(collect(run_dirs, arms, reevaluate), out, title, note)
