"""fastnet's patch-whitening stem: what it computes, that it stays frozen, its options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from realfake.models import build_model
from realfake.models.layers import PatchWhitening, fit_whitening


def correlated_images(n: int = 200) -> torch.Tensor:
    """Images whose channels and neighbouring pixels are strongly correlated (as photos are)."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, 1, 33, 33, generator=g)
    smooth = (base[..., :-1, :-1] + base[..., 1:, 1:]) / 2  # neighbours share half their value
    noise = 0.1 * torch.randn(n, 3, 32, 32, generator=g)
    return smooth * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1) + noise


def patch_covariance(x: torch.Tensor) -> torch.Tensor:
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    return flat @ flat.T / flat.shape[1]


def test_fitted_filters_whiten_the_training_patches() -> None:
    images = correlated_images()
    layer = PatchWhitening(3, kernel_size=2)
    raw = patch_covariance(F.conv2d(images, layer.weight[:12]))  # unfitted: the raw pixels
    assert (raw - torch.diag(raw.diag())).abs().max() > 0.5  # strongly correlated before
    eigenvalues = layer.fit(images)
    assert eigenvalues.shape == (12,) and eigenvalues.min() > 0
    white = patch_covariance(F.conv2d(images, layer.weight[:12]))
    # Unit variance in every direction (less the eps floor), no correlation between channels.
    assert torch.allclose(white.diag(), torch.ones(12), atol=0.06)
    assert (white - torch.diag(white.diag())).abs().max() < 1e-3
    # Each filter comes with its negation, so the ReLU keeps the whole signal.
    assert torch.equal(layer.weight[12:], -layer.weight[:12])


def test_unfitted_layer_passes_the_pixels_on() -> None:
    x = torch.randn(2, 3, 32, 32)
    out = PatchWhitening(3, kernel_size=2)(x)
    assert out.shape == (2, 24, 31, 31)
    # Channel c·4 + 2i + j is pixel (i, j) of channel c's 2×2 patch, rectified; 12 + that, negated.
    assert torch.equal(out[:, 4 * 1 + 2 * 1 + 0], F.relu(x[:, 1, 1:, :-1]))
    assert torch.equal(out[:, 12], F.relu(-x[:, 0, :-1, :-1]))


def test_filters_are_saved_but_never_trained() -> None:
    model = build_model("fastnet", 2, whiten=True)
    assert fit_whitening(model, correlated_images(50)) == 1
    layer = next(m for m in model.modules() if isinstance(m, PatchWhitening))
    assert "prep.0.weight" in model.state_dict() and "prep.0.bias" in model.state_dict()
    assert all(p is not layer.weight for p in model.parameters())
    before = layer.weight.clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 0, 1])).backward()
    opt.step()
    assert torch.equal(layer.weight, before)
    assert layer.bias.grad is not None  # the bias trains
    # A fresh network given the saved weights computes the same function.
    twin = build_model("fastnet", 2, whiten=True)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(twin.eval()(x), model.eval()(x))


def test_whitening_stem_trains_at_32_px_and_refuses_the_imagenet_stem() -> None:
    model = build_model("fastnet", 2, whiten=True)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2)
    assert fit_whitening(build_model("fastnet", 2), correlated_images(10)) == 0
    with pytest.raises(ValueError, match=r"whiten=True .* stem='imagenet'"):
        build_model("fastnet", 2, whiten=True, stem="imagenet")
    with pytest.raises(ValueError, match="expected N×3×H×W"):
        PatchWhitening(3).fit(torch.randn(4, 1, 32, 32))
