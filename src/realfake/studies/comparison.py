"""Compare finished runs: one row per run (or mean ± std per arm), written as MD, CSV and HTML.

Test figures come from ``evaluate`` on each run's own test split (reused from its metrics.json
when that scored the same checkpoint); validation figures are the epoch of the checkpoint,
i.e. the best epoch by the run's monitored metric, so every column describes the same weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from realfake.atomic import write_text
from realfake.errors import CheckpointError
from realfake.evaluate.evaluation import evaluate
from realfake.evaluate.figures import plot_study_curves
from realfake.evaluate.markup import Document, Paragraph, Table
from realfake.inference import Predictor
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
    "each run's test split, binary decisions at the threshold frozen on validation (the arg-max "
    "accuracy beside it); precision, recall and F1 are macro averages."
)


@dataclass
class Comparison:
    out_dir: Path
    runs: pd.DataFrame  # one row per run
    table: pd.DataFrame  # one row per arm: <column>_mean, <column>_std, seeds
    files: dict[str, Path] = field(default_factory=dict)


def _own_test_metrics(predictor: Predictor, run: RunDir, reevaluate: bool) -> dict[str, Any]:
    """The run's test-split metrics: its metrics.json when that scored these very weights."""
    record = read_json(run.evaluation)
    fresh = (
        record
        and record.get("data_source") is None
        and record.get("split") == "test"
        and record.get("checkpoint_sha256") == predictor.sha256
    )
    if reevaluate or not fresh:
        return evaluate(predictor).metrics
    return record["metrics"]


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
    run = RunDir(Path(run_dir))
    if not run.is_run():
        raise CheckpointError(f"{run.path} is not a realfake run directory: it has no config.yaml")
    predictor = Predictor.load(run.path)
    test = _own_test_metrics(predictor, run, reevaluate)
    config = predictor.config
    results = read_json(run.results).get("metrics", {})
    manifest = read_json(run.manifest)
    return {
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


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over seeds) of every numeric column, per arm."""
    grouped = runs.groupby("arm", sort=False)[NUMERIC]
    table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    table = table[[f"{c}_{s}" for c in NUMERIC for s in ("mean", "std")]]
    table.insert(0, "seeds", runs.groupby("arm", sort=False).size())
    return table.reset_index()


def _cell(row: pd.Series, column: str, form: str) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    if pd.isna(mean):
        return "–"
    text = form.format(mean)
    return f"{text} ± {form.format(std)}" if row["seeds"] > 1 and not pd.isna(std) else text


def write_tables(table: pd.DataFrame, out_dir: Path, title: str, note: str = "") -> dict[str, Path]:
    """table.csv (numbers), table.md and table.html (mean ± std as text)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "table.csv"
    write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    header = ["arm", "seeds", *(h for _, h, _ in COLUMNS)]
    rows = [
        [row["arm"], int(row["seeds"]), *(_cell(row, c, f) for c, _, f in COLUMNS)]
        for _, row in table.iterrows()
    ]
    doc = Document(title)
    doc.add(Paragraph(f"{note} {READING}".strip()), Table(header, rows))
    md = doc.write(out_dir / "table.md")
    return {"csv": csv_path, "md": md, "html": md.with_suffix(".html")}


def compare(
    run_dirs: list[str | Path],
    out_dir: str | Path | None = None,
    arms: list[str] | None = None,
    title: str = "comparison",
    note: str = "",
    reevaluate: bool = False,
) -> Comparison:
    """Collect finished runs into one table; runs sharing an arm name are averaged over seeds."""
    if not run_dirs:
        raise CheckpointError("no runs to compare; pass run directories")
    out = Path(out_dir) if out_dir else Path("studies") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    rows = [run_row(r, reevaluate) for r in run_dirs]
    runs = pd.DataFrame(rows)
    runs.insert(0, "arm", arms if arms is not None else runs["run"])
    table = summarise(runs)
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
    return Comparison(out, runs, table, files)
