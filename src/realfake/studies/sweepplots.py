"""A sweep's PNG plots, drawn by Optuna's matplotlib visualisations (no plotly needed).

Optimisation history, parameter importances, parallel coordinates and slice plots. A plot that
the study cannot support yet (importances need two completed trials with varying values) is
skipped with a logged reason.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna

from realfake.atomic import replacing

log = logging.getLogger(__name__)

PLOTS = ("history", "importances", "parallel_coordinates", "slices")


def write_plots(study: optuna.Study, out_dir: Path) -> dict[str, Path]:
    """``out_dir/<plot>.png`` for every plot the study supports; their paths by name."""
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        log.warning("no plots: the sweep has no completed trial yet")
        return {}
    draw = {
        "history": ovm.plot_optimization_history,
        "importances": ovm.plot_param_importances,
        "parallel_coordinates": ovm.plot_parallel_coordinate,
        "slices": ovm.plot_slice,
    }
    out: dict[str, Path] = {}
    # matplotlib logs a note for every categorical axis of numbers-as-strings; not news here.
    category = logging.getLogger("matplotlib.category")
    level = category.level
    category.setLevel(logging.WARNING)
    try:
        for name, fn in draw.items():
            path = _draw(study, name, fn, out_dir)
            if path is not None:
                out[name] = path
    finally:
        category.setLevel(level)
    return out


def _draw(study: optuna.Study, name: str, fn: Callable, out_dir: Path) -> Path | None:
    """One plot as a PNG, or None (with the reason logged) when the study cannot support it."""
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        # Optuna marks its matplotlib plots experimental; their output is what we want.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            axes = fn(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.warning("no %s plot: %s", name, " ".join(str(exc).split()))
            return None
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    fig = first.figure
    try:
        fig.set_size_inches(max(fig.get_size_inches()[0], 8), max(fig.get_size_inches()[1], 5))
        path = out_dir / f"{name}.png"
        with replacing(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        return path
    finally:
        plt.close(fig)
