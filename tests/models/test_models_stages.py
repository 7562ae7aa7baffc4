"""Every registered model names its stages: 4D maps, shallowest first, the last Grad-CAM's."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from realfake.models import build_model, gradcam_target_layer, list_models

# The three largest nets (>= 34M parameters) take seconds to build, and every net costs more at
# 96 px (the VGGs over a second, their 4096-wide head): the fast tier checks the others at 32 px,
# the slow tier everything.
HEAVY = {"resnet101", "resnext101_32x8d", "resnext29_8x64d"}


def _heavy(name: str, size: int) -> bool:
    return name in HEAVY or size > 32


def _cases() -> list:
    return [
        pytest.param(name, size, marks=[pytest.mark.slow] if _heavy(name, size) else [])
        for name in list_models()
        for size in (32, 96)  # 96 px picks the ImageNet stem and the large head
    ]


@pytest.mark.parametrize(("name", "image_size"), _cases())
def test_stages_are_4d_maps_in_forward_order_ending_at_the_gradcam_layer(
    name: str, image_size: int
) -> None:
    """The out-of-distribution score reads every stage's channel statistics: each stage is a
    N×C×H×W map, they run in the order given, none is finer than the one before, and the
    last is the map Grad-CAM weighs (the deepest spatial features)."""
    torch.manual_seed(0)
    model = build_model(name, 2, image_size=image_size).eval()
    stages = model.feature_stages
    assert len(stages) >= 3
    seen: list[tuple[int, torch.Tensor]] = []
    handles = [
        stage.register_forward_hook(lambda m, i, out, k=k: seen.append((k, out.clone())))
        for k, stage in enumerate(stages)
    ]
    target: list[torch.Tensor] = []
    handles.append(
        gradcam_target_layer(model).register_forward_hook(lambda m, i, o: target.append(o))
    )
    with torch.no_grad():
        model(torch.randn(2, 3, image_size, image_size))
    for handle in handles:
        handle.remove()
    assert [k for k, _ in seen] == list(range(len(stages)))
    shapes = [out.shape for _, out in seen]
    assert all(len(s) == 4 and s[0] == 2 for s in shapes), shapes
    assert all(a[-1] >= b[-1] and a[-2] >= b[-2] for a, b in pairwise(shapes)), shapes
    assert torch.equal(seen[-1][1], target[-1])
