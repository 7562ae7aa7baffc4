"""Evaluation, prediction, reports and comparison studies of trained runs.

Everything loads on first use (PEP 562), so ``realfake --help`` does not import torch,
scikit-learn or matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from realfake._lazy import lazy_exports

if TYPE_CHECKING:
    from realfake.evaluate.bootstrap import bootstrap_ci
    from realfake.evaluate.comparison import Comparison, compare, run_row
    from realfake.evaluate.evaluation import EvalResult, evaluate
    from realfake.evaluate.metrics import classification_metrics, decide, positive_class
    from realfake.evaluate.prediction import predict, saved_threshold, write_predictions
    from realfake.evaluate.report import write_report
    from realfake.evaluate.study import Study, load_study, run_study
    from realfake.evaluate.threshold import choose_threshold

_LAZY = {
    "bootstrap_ci": "bootstrap",
    "Comparison": "comparison",
    "compare": "comparison",
    "run_row": "comparison",
    "EvalResult": "evaluation",
    "evaluate": "evaluation",
    "classification_metrics": "metrics",
    "decide": "metrics",
    "positive_class": "metrics",
    "predict": "prediction",
    "saved_threshold": "prediction",
    "write_predictions": "prediction",
    "write_report": "report",
    "Study": "study",
    "load_study": "study",
    "run_study": "study",
    "choose_threshold": "threshold",
}

__all__ = [
    "Comparison",
    "EvalResult",
    "Study",
    "bootstrap_ci",
    "choose_threshold",
    "classification_metrics",
    "compare",
    "decide",
    "evaluate",
    "load_study",
    "positive_class",
    "predict",
    "run_row",
    "run_study",
    "saved_threshold",
    "write_predictions",
    "write_report",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
