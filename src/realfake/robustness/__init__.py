"""Robustness and audits of trained checkpoints (issue 8).

  perturbations  seeded ``kind:level`` perturbations of uint8 batches (JPEG, blur, noise, ...)
  grid           metrics under every perturbation, threshold frozen on clean validation data
  scores         accuracy, F1, ROC-AUC, AP; the validation threshold
  evaldata       a checkpoint's test images and clean validation split
  plot           the heat-map of a robustness report
  shortcuts      JPEG re-encoding, per-CIFAR-10-class and other-size probes
  leaks          exact and perceptual-hash near duplicates between train and test
  gradcam        Grad-CAM maps (no file I/O); overlay and explain render them to PNGs
  export         a perturbed copy of a data set in the same layout

Names load on first use (PEP 562), so importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from realfake._lazy import lazy_exports

if TYPE_CHECKING:
    from realfake.robustness.export import perturb_source
    from realfake.robustness.gradcam import gradcam
    from realfake.robustness.grid import RobustnessReport, robustness_report
    from realfake.robustness.leaks import audit_leaks
    from realfake.robustness.perturbations import Perturbation, parse_grid, parse_perturbation
    from realfake.robustness.shortcuts import audit_shortcuts

_LAZY = {
    "perturb_source": "export",
    "gradcam": "gradcam",
    "RobustnessReport": "grid",
    "robustness_report": "grid",
    "audit_leaks": "leaks",
    "Perturbation": "perturbations",
    "parse_grid": "perturbations",
    "parse_perturbation": "perturbations",
    "audit_shortcuts": "shortcuts",
}

__all__ = [
    "Perturbation",
    "RobustnessReport",
    "audit_leaks",
    "audit_shortcuts",
    "gradcam",
    "parse_grid",
    "parse_perturbation",
    "perturb_source",
    "robustness_report",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
