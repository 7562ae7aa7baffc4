"""Inference: a trained run or checkpoint turned into probabilities and decisions, no Lightning.

predictor   BasePredictor (decode, resize, batches, threshold, decision: shared by backends);
            Predictor: the network run with torch (normalise, flip TTA, probabilities)
onnx        OnnxPredictor: an exported .onnx file run with ONNX Runtime (imported on load)
backends    load_predictor: a run, .ckpt or .onnx with the backend it needs
decision    the decision rule (threshold on P(positive), else arg-max)
table       a prediction table (CSV) for every image file of a folder or archive
"""

from realfake.inference.backends import BACKENDS, load_predictor
from realfake.inference.onnx import OnnxPredictor
from realfake.inference.predictor import BasePredictor, Prediction, Predictor, tta_probabilities

__all__ = [
    "BACKENDS",
    "BasePredictor",
    "OnnxPredictor",
    "Prediction",
    "Predictor",
    "load_predictor",
    "tta_probabilities",
]
