"""Export a trained model for other runtimes (built on ``realfake.inference``; no Lightning).

onnx        export_onnx: one ONNX graph (normalise, network, softmax, flip TTA) with the spec
"""

from realfake.export.onnx import export_onnx

__all__ = ["export_onnx"]
