"""Inference on trained checkpoints: a plain Predictor object the CLI and the service share."""

from realfake.inference.predictor import Predictor

__all__ = ["Predictor"]
