"""Grad-CAM (Selvaraju et al., ICCV 2017): where in the image the evidence for a class lies.

Captum's LayerGradCam on the model's last convolutional block (``gradcam_target_layer``): the
block's activations weighted by the spatial mean of the class score's gradient, summed over
channels and rectified. Pure tensors in and out, no files, so a service can call it per request.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realfake.models import gradcam_target_layer
from realfake.runs import ModelSpec


def tiles_unexplained(spec: ModelSpec) -> str | None:
    """Why Grad-CAM cannot show what decided for a model that scores native tiles (one
    sentence, the same in `realfake explain` and the service); None for a whole-image model."""
    if not spec.tiles:
        return None
    return (
        f"this model scores up to {spec.tiles} tiles of each image at its own size; "
        "Grad-CAM here maps one image as the network sees it, so it would not show what decided"
    )


def gradcam(
    model: nn.Module,
    images: torch.Tensor,
    target_class: int | torch.Tensor | None = None,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """N×H×W Grad-CAM maps in [0, 1] of normalised images N×3×H×W (each map scaled to max 1).

    ``target_class``: one class for all images, one per image, or None for the predicted class.
    ``size``: the maps' size (default the images'); coarse maps are upsampled bilinearly.
    An image with no positive evidence for the class gets an all-zero map.
    """
    from captum.attr import LayerGradCam

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():  # callers may hold torch.no_grad() / inference mode off
            x = images.detach().float()
            if target_class is None:
                with torch.no_grad():
                    target = model(x).argmax(1)
            elif isinstance(target_class, int):
                target = torch.full((x.shape[0],), target_class, dtype=torch.long)
            else:
                target = target_class.to(torch.long)
            cam = LayerGradCam(model, gradcam_target_layer(model)).attribute(
                x, target=target.tolist(), relu_attributions=True
            )
    finally:
        model.train(was_training)
    cam = cam.detach().float()
    if cam.ndim == 3:
        cam = cam.unsqueeze(1)
    cam = F.interpolate(cam, size=size or tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    cam = cam[:, 0].clamp_min(0)
    peak = cam.flatten(1).amax(1).view(-1, 1, 1)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
