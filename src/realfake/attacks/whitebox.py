"""Attacks on the function a Predictor computes, from uint8 images to uint8 images.

The attacked function is the predictor's own: the spec's normalisation, the network in eval
mode and, with flip TTA on, the mean of the image's and its mirror image's softmax
(``realfake.inference.tta_probabilities``). The loss is its negative log-probability of the label,
so a grid entry attacks exactly what the grid then scores.

Attacked pixels are rounded back to uint8: an attack that survives rounding is what an attacked
file on disk would be. With ε a whole number of 1/255 steps the rounded image stays in the
ε-ball (x ± ε are whole steps themselves), and FGSM at ε = 1/255 moves every pixel whose
gradient is not zero by exactly ±1, except where it would leave [0, 255].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from realfake.attacks.linf import Attack, LossFn
from realfake.data.augment import normalize
from realfake.inference import Predictor


def log_probabilities(model: nn.Module, x: torch.Tensor, flip: bool) -> torch.Tensor:
    """log ``tta_probabilities(model, x, flip)``, computed stably (log-sum-exp of the views).

    Taking the log of the averaged softmax would lose the gradient of confident images (their
    probability rounds to 1); the log-sum-exp of the two log-softmaxes does not.
    """
    log_p = model(x).float().log_softmax(dim=1)
    if flip:
        log_p = torch.logaddexp(log_p, model(x.flip(-1)).float().log_softmax(dim=1)) - math.log(2)
    return log_p


def predictor_loss(predictor: Predictor, tta: bool | None = None) -> LossFn:
    """-log P(label | pixels) of the predictor's function: pixels in [0, 1] -> loss per image."""
    flip = predictor.resolve_tta(tta)
    model, mean, std = predictor.model, predictor.spec.mean, predictor.spec.std

    def loss(pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = log_probabilities(model, normalize(pixels, mean, std), flip)
        return F.nll_loss(log_p, labels, reduction="none")

    return loss


def quantize(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels in [0, 1] -> the nearest uint8 values."""
    return pixels.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def attack_images(
    predictor: Predictor,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    attack: Attack,
    *,
    tta: bool | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> torch.Tensor:
    """``attack`` of uint8 N×3×S×S ``images`` against ``predictor``, rounded back to uint8.

    ``labels`` are the classes whose probability the attack lowers (the true ones, as indices of
    ``predictor.classes``); None attacks the class the predictor gives each image the highest
    probability (for unlabelled images). The random starts draw from a CPU generator seeded with
    ``seed``, batch after batch, so the same images, seed and batch size give the same result.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images N×3×H×W, got {images.dtype} {tuple(images.shape)}")
    if labels is None:
        labels = predicted_labels(predictor, images, tta=tta, batch_size=batch_size)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"got {tuple(labels.shape)} labels for {images.shape[0]} images")
    loss = predictor_loss(predictor, tta)
    generator = torch.Generator().manual_seed(seed)
    device = predictor.device
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], batch_size):
        stop = start + batch_size
        x = images[start:stop].to(device).float().div_(255)
        adv = attack(loss, x, labels[start:stop].to(device), generator)
        out[start:stop] = quantize(adv).to(out.device)
    return out


def predicted_labels(
    predictor: Predictor,
    images: torch.Tensor,
    *,
    tta: bool | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """The class of highest probability per image (the predictor's function, its TTA)."""
    probs = predictor.probabilities(images, tta=tta, batch_size=batch_size)
    return torch.from_numpy(probs.argmax(axis=1))
