"""The model zoo: ResNet, ResNeXt, VGG, fastnet and NPR's network as plain `nn.Module`s, by name."""

from torch import nn

from realfake.models import fastnet, resnet, vgg  # noqa: F401  (importing registers the models)
from realfake.models.registry import (
    COMMON_OPTIONS,
    ModelError,
    build_model,
    list_models,
    model_options,
    own_options,
    register_model,
)
from realfake.models.residuals import INPUT_TRANSFORMS
from realfake.models.summary import ModelSummary, count_macs, count_params, summarize


def gradcam_target_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations Grad-CAM weighs: the model's last convolutional block."""
    layer = getattr(model, "feature_layer", None)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{type(model).__name__} does not say which layer is its feature layer")
    return layer


__all__ = [
    "COMMON_OPTIONS",
    "INPUT_TRANSFORMS",
    "ModelError",
    "ModelSummary",
    "build_model",
    "count_macs",
    "count_params",
    "gradcam_target_layer",
    "list_models",
    "model_options",
    "own_options",
    "register_model",
    "summarize",
]
