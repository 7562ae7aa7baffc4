"""Heat-map of a robustness report: metrics (rows) against perturbations (columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realfake.atomic import replacing
from realfake.robustness.grid import RobustnessReport
from realfake.robustness.scores import METRICS

LABELS = {"accuracy": "accuracy", "f1": "F1", "roc_auc": "ROC-AUC", "ap": "AP"}


def plot_heatmap(report: RobustnessReport, path: str | Path, title: str | None = None) -> Path:
    """Save a PNG heat-map of every metric under every perturbation, the grid mean last."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe in servers and CI
    import matplotlib.pyplot as plt

    records = report.records(with_mean=True)
    columns = [str(r["perturbation"]) for r in records]
    values = np.array([[float(r[m]) for r in records] for m in METRICS])  # type: ignore[arg-type]
    # 0.5 is chance for binary accuracy and ROC-AUC: the colour scale starts there, unless a
    # multi-class figure falls below it.
    low = min(0.5, float(np.nanmin(values))) if np.isfinite(values).any() else 0.5
    fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * len(columns) + 1.5), 3.2))
    image = ax.imshow(values, cmap="RdYlGn", vmin=low, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(METRICS)), [LABELS[m] for m in METRICS], fontsize=9)
    for (i, j), v in np.ndenumerate(values):
        text = "–" if np.isnan(v) else f"{v:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7)
    # Separate the clean column and the mean column from the grid.
    for x in (0.5, len(columns) - 1.5):
        ax.axvline(x, color="black", linewidth=1.2)
    threshold = "" if report.threshold is None else f", threshold {report.threshold:.3f}"
    ax.set_title(title or f"{Path(report.checkpoint).parent.parent.name}{threshold}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    fig.tight_layout()
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    return path
