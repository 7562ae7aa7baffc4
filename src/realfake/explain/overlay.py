"""Grad-CAM overlays a person can read: image and heat-map enlarged, side by side, captioned."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def overlay(
    image: torch.Tensor, cam: torch.Tensor, size: int = 256, alpha: float = 0.45, caption: str = ""
) -> Image.Image:
    """[image | image + heat-map] at ``size`` px each, ``caption`` in a strip on top.

    ``image`` is uint8 3×H×W; ``cam`` is an H'×W' map in [0, 1], upsampled bilinearly. The image
    is enlarged with nearest neighbours so its real pixels stay visible (a 32 px image holds no
    more detail than that).
    """
    from matplotlib import colormaps

    picture = Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).resize(
        (size, size), Image.Resampling.NEAREST
    )
    heat = Image.fromarray((cam.detach().cpu().float().numpy() * 255).astype(np.uint8))
    heat = np.asarray(heat.resize((size, size), Image.Resampling.BILINEAR)) / 255.0
    colour = colormaps["jet"](heat)[..., :3]
    blended = (1 - alpha) * np.asarray(picture) / 255.0 + alpha * colour
    mixed = Image.fromarray((blended.clip(0, 1) * 255).round().astype(np.uint8))
    strip = 22 if caption else 0
    panel = Image.new("RGB", (2 * size + 4, size + strip), "white")
    panel.paste(picture, (0, strip))
    panel.paste(mixed, (size + 4, strip))
    if caption:
        ImageDraw.Draw(panel).text((4, 4), caption, fill="black")
    return panel
