"""Attacks on the function a Scorer computes, from uint8 images to uint8 images.

The attacked function is the scorer's own (its torch predictor, with the scorer's flip TTA):
the spec's normalisation, the network in eval mode and, with flip TTA on, the mean of the
image's and its mirror image's softmax (``realfake.inference.tta_probabilities``). The loss
is its negative log-probability of the label, so a grid entry attacks exactly what the grid
then scores.

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
from realfake.inference import Scorer


def log_probabilities(model: nn.Module, x: torch.Tensor, flip: bool) -> torch.Tensor:
    """log ``tta_probabilities(model, x, flip)``, computed stably (log-sum-exp of the views).

    Taking the log of the averaged softmax would lose the gradient of confident images (their
    probability rounds to 1); the log-sum-exp of the two log-softmaxes does not.
    """
    log_p = model(x).float().log_softmax(dim=1)
    if flip:
        log_p = torch.logaddexp(log_p, model(x.flip(-1)).float().log_softmax(dim=1)) - math.log(2)
    return log_p


def scorer_loss(scorer: Scorer) -> LossFn:
    """-log P(label | pixels) of the scorer's function: pixels in [0, 1] -> loss per image."""
    predictor = scorer.torch_predictor("white-box attacks need the network's gradients")
    flip = scorer.tta
    model, mean, std = predictor.model, predictor.spec.mean, predictor.spec.std

    def loss(pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = log_probabilities(model, normalize(pixels, mean, std), flip)
        return F.nll_loss(log_p, labels, reduction="none")

    return loss


def quantize(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels in [0, 1] -> the nearest uint8 values."""
    return pixels.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def attack_images(
    scorer: Scorer,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    attack: Attack,
    *,
    seed: int = 0,
) -> torch.Tensor:
    """``attack`` of uint8 N×3×S×S ``images`` against ``scorer``, rounded back to uint8.

    ``labels`` are the classes whose probability the attack lowers (the true ones, as indices of
    ``scorer.classes``); None attacks the class the scorer decides for each image (for
    unlabelled images). The random starts draw from a CPU generator seeded with
    ``seed``, batch after batch, so the same images, seed and batch size give the same result.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images N×3×H×W, got {images.dtype} {tuple(images.shape)}")
    if labels is None:
        labels = predicted_labels(scorer, images)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"got {tuple(labels.shape)} labels for {images.shape[0]} images")
    loss = scorer_loss(scorer)
    generator = torch.Generator().manual_seed(seed)
    device, batch_size = scorer.torch_predictor().device, scorer.batch_size
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], batch_size):
        stop = start + batch_size
        x = images[start:stop].to(device).float().div_(255)
        adv = attack(loss, x, labels[start:stop].to(device), generator)
        out[start:stop] = quantize(adv).to(out.device)
    return out


def predicted_labels(scorer: Scorer, images: torch.Tensor) -> torch.Tensor:
    """The class the scorer decides per image (its TTA and decision rule)."""
    return torch.from_numpy(scorer.decide(scorer.probabilities(images)))
