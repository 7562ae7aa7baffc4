"""Inference: a trained run or checkpoint turned into probabilities and decisions, no Lightning.

predictor   Predictor: decode, resize, normalise, flip TTA, probabilities, the decision
decision    the decision rule (threshold on P(positive), else arg-max)
table       a prediction table (CSV) for every image file of a folder or archive
"""

from realfake.inference.predictor import Prediction, Predictor, tta_probabilities

__all__ = ["Prediction", "Predictor", "tta_probabilities"]
