"""Inference: a trained run or checkpoint turned into probabilities and decisions, no Lightning.

predictor   BasePredictor (decode, resize, batches: shared by backends); Predictor: the network
            run with torch (normalise, flip TTA, probabilities)
onnx        OnnxPredictor: an exported .onnx file run with ONNX Runtime (imported on load)
backends    load_predictor: a run, .ckpt or .onnx with the backend it needs
rule        the decision rule (arg-max, or a threshold frozen for the weights) and its reason
threshold   freezing a threshold on validation, only when the split can support it
scorer      Scorer: predictor + TTA + batch size + rule, the one owner of images → decision
splits      labelled images to score: a run's own splits rebuilt, or any labelled source
verdict     FAKE / REAL / UNSURE: the band around the threshold, the distance to training images
table       a prediction table (CSV) for every image file of a folder or archive
summary     the one-page HTML summary of a prediction table, for people
"""

from realfake.inference.backends import BACKENDS, load_predictor
from realfake.inference.onnx import OnnxPredictor
from realfake.inference.predictor import BasePredictor, Predictor, tta_probabilities
from realfake.inference.rule import DecisionRule
from realfake.inference.scorer import Decision, Scorer, as_scorer

__all__ = [
    "BACKENDS",
    "BasePredictor",
    "Decision",
    "DecisionRule",
    "OnnxPredictor",
    "Predictor",
    "Scorer",
    "as_scorer",
    "load_predictor",
    "tta_probabilities",
]
