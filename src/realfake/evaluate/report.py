"""``write_report(run_dir)``: report.md and report.html a person can read, from the run's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from realfake.errors import CheckpointError
from realfake.evaluate.markup import Cell, Document, Heading, Image, Items, Paragraph, Table
from realfake.runs import RunDir, read_json

SPLITS = ("train", "val", "test")
# (caption, file under figures/) in reading order.
FIGURES = (
    ("confusion matrix", "confusion_matrix.png"),
    ("ROC curve", "roc.png"),
    ("precision-recall curve", "pr.png"),
    ("reliability diagram", "reliability.png"),
    ("most confident mistakes", "mistakes.png"),
    ("risk-coverage: the error of the answers given against the share of images answered",
     "risk_coverage.png"),
    ("per source: accuracy and ROC-AUC", "per_source.png"),
)  # fmt: skip

# (label, dotted config key) of the settings a reader wants at a glance.
CONFIG_SUMMARY = (
    ("model", "model.name"),
    ("dropout (head / blocks)", ("model.dropout", "model.block_dropout")),
    ("optimiser", "optim.name"),
    ("learning rate", "optim.lr"),
    ("weight decay", "optim.weight_decay"),
    ("schedule", "sched.name"),
    ("max epochs", "trainer.max_epochs"),
    ("batch size", "data.batch_size"),
    ("image size / resize", ("data.image_size", "data.resize")),
    ("label smoothing", "trainer.label_smoothing"),
    ("early stopping (enabled / patience)", ("early_stopping.enabled", "early_stopping.patience")),
    ("augment: flip / crop padding", ("data.augment.flip", "data.augment.crop_padding")),
    ("seed", "seed"),
)


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _number(value: Any) -> Cell:
    """Whole numbers as integers (epochs), the rest as they are."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def headline_rows(metrics: dict[str, Any]) -> list[list[Cell]]:
    """(metric, value, 95% CI) rows of one evaluation's metrics."""
    ci = metrics.get("ci") or {}

    def interval(name: str) -> str:
        lo_hi = ci.get(name)
        return f"{lo_hi[0]:.4f} – {lo_hi[1]:.4f}" if lo_hi else ""

    rows: list[list[Cell]] = [["accuracy", metrics["accuracy"], interval("accuracy")]]
    if metrics["threshold"] is not None:  # binary: what the threshold changed
        rows.append(["accuracy (arg-max)", metrics["accuracy_argmax"], ""])
    rows.append(["balanced accuracy", metrics["balanced_accuracy"], ""])
    for average in ("macro", "weighted"):
        for name in ("precision", "recall", "f1"):
            key = f"{name}_{average}"
            rows.append([f"{name} ({average})", metrics[key], interval(key)])
    positive = metrics.get("positive_class")
    suffix = f" ({positive} positive)" if positive else " (one-vs-rest macro)"
    rows += [
        ["ROC-AUC" + suffix, metrics["roc_auc"], ""],
        ["average precision" + suffix, metrics["average_precision"], ""],
        ["log loss", metrics["log_loss"], ""],
        [f"ECE ({metrics['ece_bins']} bins)", metrics["ece"], ""],
    ]
    return rows


def per_class_rows(metrics: dict[str, Any]) -> list[list[Cell]]:
    """(class, precision, recall, F1, support, ROC-AUC, AP) rows."""
    return [
        [
            name,
            m["precision"],
            m["recall"],
            m["f1"],
            m["support"],
            m["roc_auc"],
            m["average_precision"],
        ]
        for name, m in metrics["per_class"].items()
    ]


PER_CLASS_HEADER = ["class", "precision", "recall", "F1", "support", "ROC-AUC", "AP"]


def per_source_text(metrics: dict[str, Any]) -> str:
    """What the per-source table's columns mean."""
    positive = metrics.get("positive_class")
    if positive is None:
        return "Per source (where the images come from):"
    negative = next(c for c in metrics["classes"] if c != positive)
    return (
        f"Per source (where the images come from). ROC-AUC ranks a source's {positive} images "
        f"against every {negative} image of the evaluation, whatever its source (a source of "
        f"{negative} images alone: every {positive} image against its own):"
    )


def per_source_table(metrics: dict[str, Any]) -> Table | None:
    """One row per source (per_source_metrics); None for evaluations without them."""
    per_source = metrics.get("per_source")
    if not per_source:
        return None
    classes, positive = metrics["classes"], metrics.get("positive_class")
    header: list[str] = ["source", "images", "accuracy"]
    if positive is None:  # multi-class: no positive class to recall
        return Table(header, [[name, m["n"], m["accuracy"]] for name, m in per_source.items()])
    negative = next(c for c in classes if c != positive)
    header += [
        f"{positive} / {negative}",
        "ROC-AUC",
        f"recall ({positive})",
        f"specificity ({negative})",
    ]
    rows: list[list[Cell]] = [
        [
            name,
            m["n"],
            m["accuracy"],
            f"{m['positives']} / {m['negatives']}",
            m["roc_auc"],
            m["recall"],
            m["specificity"],
        ]
        for name, m in per_source.items()
    ]
    return Table(header, rows)


def decision_text(record: dict[str, Any]) -> str:
    """The rule that decided an evaluation, in one line (older records: their threshold)."""
    decision = record.get("decision")
    if decision:
        return str(decision["text"])
    threshold = record.get("threshold")
    positive = record["metrics"].get("positive_class")
    return "arg-max" if threshold is None else f"P({positive}) >= {threshold:.4f}"


def verdicts_text(metrics: dict[str, Any]) -> str:
    """Coverage and the accuracy of the answers, and why the rest were UNSURE."""
    v = metrics.get("verdicts")
    if not v:
        return "no UNSURE verdicts (evaluated before they existed)"
    if not v["unsure"]:
        return f"all {v['answered']} images answered (no UNSURE)"
    return (
        f"{v['answered']} answered (coverage {v['coverage']:.1%}, accuracy of the answers "
        f"{v['selective_accuracy']:.4f}); UNSURE: {v['unsure_in_band']} near the threshold, "
        f"{v['unsure_unlike_training']} unlike the training images"
    )


def _evaluation(doc: Document, record: dict[str, Any], figures: Path) -> None:
    m = record["metrics"]
    doc.add(
        Items(
            [
                ("data", record["data"]),
                ("images", record["images"]),
                ("files that failed to decode", record.get("skipped_files", 0)),
                ("data fingerprint", record.get("data_fingerprint")),
                ("decision", decision_text(record)),
                ("verdicts", verdicts_text(m)),
                ("flip test-time augmentation", "yes" if record.get("tta") else "no"),
                ("checkpoint", record["checkpoint"]),
                ("evaluated", record.get("evaluated_at")),
            ]
        ),
        Table(["metric", "value", _ci_header(m.get("ci"))], headline_rows(m)),
        Table(PER_CLASS_HEADER, per_class_rows(m)),
    )
    sources = per_source_table(m)
    if sources is not None:
        doc.add(Paragraph(per_source_text(m)), sources)
    doc.add(
        Paragraph("Confusion matrix (rows: true class, columns: predicted class):"),
        Table(
            ["true \\ predicted", *m["classes"]],
            [[c, *row] for c, row in zip(m["classes"], m["confusion_matrix"], strict=True)],
        ),
    )
    for caption, name in FIGURES:
        if (figures / name).is_file():
            doc.add(Image(f"figures/{name}", caption))


def _ci_header(ci: dict[str, Any] | None) -> str:
    if not ci:
        return "CI (not computed: 0 resamples)"
    return f"{round(100 * ci['level'])}% CI (bootstrap, {ci['resamples']} resamples)"


def _summary(
    cfg: dict[str, Any], data: dict[str, Any], results: dict[str, Any], evaluation: dict[str, Any]
) -> str:
    model, source = _get(cfg, "model.name"), data.get("source", "?")
    if not results:
        return f"{model} on {source}; training has not finished."
    text = (
        f"{model} trained for {results.get('epochs', 0):.0f} epochs on {source} "
        f"(classes {', '.join(data.get('classes', []))})."
    )
    if evaluation:
        m = evaluation["metrics"]
        ci = (m.get("ci") or {}).get("accuracy")
        interval = f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else ""
        text += (
            f" Test accuracy {m['accuracy']:.4f}{interval}, macro F1 "
            f"{m['f1_macro']:.4f}, on {evaluation['images']} images."
        )
    return text


def _provenance(manifest: dict[str, Any]) -> Items:
    data, git = manifest.get("data", {}), manifest.get("git", {})
    sizes = data.get("sizes", {})
    commit = (git.get("commit") or "unknown") + (
        " (uncommitted changes)" if git.get("dirty") else ""
    )
    return Items(
        [
            ("status", manifest.get("status")),
            ("started / ended", f"{manifest.get('started')} / {manifest.get('ended')}"),
            ("git commit", commit),
            ("data source", data.get("source")),
            ("data fingerprint", data.get("fingerprint")),
            ("classes", ", ".join(data.get("classes", []))),
            ("images train / val / test", " / ".join(str(sizes.get(s, "?")) for s in SPLITS)),
            ("device", (manifest.get("device") or {}).get("platform")),
            ("torch", (manifest.get("packages") or {}).get("torch")),
        ]
    )


def _configuration(cfg: dict[str, Any]) -> Table:
    rows: list[list[Cell]] = []
    for label, keys in CONFIG_SUMMARY:
        names = keys if isinstance(keys, tuple) else (keys,)
        rows.append([label, " / ".join(str(_get(cfg, k)) for k in names)])
    return Table(["setting", "value"], rows)


def _training(results: dict[str, Any], manifest: dict[str, Any]) -> Table:
    shown = ("epochs", "best_epoch", "best_val_loss", "best_val_acc", "images_per_s")
    rows: list[list[Cell]] = [[k, _number(results[k])] for k in shown if k in results]
    if "train_time_s" in manifest:
        rows.append(["train_time_s", round(float(manifest["train_time_s"]), 1)])
    return Table(["figure", "value"], rows)


def _other_evaluations(paths: list[Path]) -> Table:
    rows: list[list[Cell]] = []
    for path in paths:
        record = read_json(path)
        m = record["metrics"]
        rows.append(
            [
                path.parent.name,
                record["data"],
                record["images"],
                m["accuracy"],
                m["f1_macro"],
                m["roc_auc"],
                record.get("threshold"),
            ]
        )
    header = ["folder", "data", "images", "accuracy", "F1 (macro)", "ROC-AUC", "threshold"]
    return Table(header, rows)


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` and ``report.html`` into a run directory; returns the Markdown path."""
    run = RunDir(Path(run_dir))
    if not run.is_run():
        raise CheckpointError(f"{run.path} is not a realfake run directory: it has no config.yaml")
    cfg = OmegaConf.to_container(OmegaConf.load(run.config))
    assert isinstance(cfg, dict)
    manifest = read_json(run.manifest)
    results = read_json(run.results).get("metrics", {})
    evaluation = read_json(run.evaluation)
    doc = Document(f"realfake run {run.name}")
    doc.add(
        Paragraph(_summary(cfg, manifest.get("data", {}), results, evaluation)),
        Heading("Provenance"),
        _provenance(manifest),
        Heading("Configuration"),
        _configuration(cfg),
        Paragraph("The full resolved configuration is in config.yaml."),
    )
    if results:
        doc.add(Heading("Training"), _training(results, manifest))
    if (run.figures / "learning_curves.png").is_file():
        doc.add(Image("figures/learning_curves.png", "learning curves"))
    doc.add(Heading("Test evaluation"))
    if evaluation:
        _evaluation(doc, evaluation, run.figures)
    else:
        doc.add(Paragraph(f"Not evaluated yet: run `realfake evaluate {run.path}`."))
    others = run.other_evaluations()
    if others:
        doc.add(Heading("Other evaluations"), _other_evaluations(others))
    return doc.write(run.report)
