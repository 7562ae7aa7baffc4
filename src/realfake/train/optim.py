"""Optimisers and learning-rate schedules built from the config."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from realfake.train.config import OptimConfig, SchedConfig


def param_groups(model: nn.Module, weight_decay: float, exclude_bn_bias: bool) -> list[dict]:
    """Split parameters so that BN scales/shifts and biases get no weight decay when asked."""
    if not exclude_bn_bias or weight_decay == 0:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        # 1-D tensors are exactly the biases and normalisation affine parameters.
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.exclude_bn_bias_from_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    betas = (float(cfg.betas[0]), float(cfg.betas[1]))
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimiser {cfg.name!r}")


def lr_factor(step: int, total: int, warmup: int, cfg: SchedConfig, base_lr: float) -> float:
    """Multiplier of the base learning rate at ``step`` for the per-step schedules."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if cfg.name == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        floor = cfg.min_lr / base_lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


class LinearWarmup(torch.optim.lr_scheduler.LRScheduler):
    """Raise the rate linearly to its base over ``steps`` steps, then leave it alone.

    Unlike a LambdaLR it never writes the rate after the warm-up, so an epoch-level scheduler
    (ReduceLROnPlateau, which has no warm-up of its own) can share the optimiser with it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int) -> None:
        self.steps = max(1, steps)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch < self.steps:
            return [base * (self.last_epoch + 1) / self.steps for base in self.base_lrs]
        return [group["lr"] for group in self.optimizer.param_groups]


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedConfig, total_steps: int, steps_per_epoch: int
) -> list[dict[str, Any]]:
    """Lightning ``lr_scheduler`` configs (none for a constant rate without warm-up)."""
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    base_lr = optimizer.param_groups[0]["lr"]
    if cfg.name == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            # One more than the steps taken, so the rate read after the last step stays in
            # range; at least 10 so that very short smoke runs still have two distinct phases.
            total_steps=max(total_steps + 1, 10),
            pct_start=cfg.pct_start,
            anneal_strategy="linear",
            # Momentum cycling fights Adam's betas and Nesterov alike; keep momentum fixed.
            cycle_momentum=False,
        )
        return [{"scheduler": sched, "interval": "step"}]
    if cfg.name == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.gamma, patience=cfg.plateau_patience
        )
        out = [{"scheduler": plateau, "interval": "epoch", "monitor": "val/loss"}]
        if warmup > 0:
            out.insert(0, {"scheduler": LinearWarmup(optimizer, warmup), "interval": "step"})
        return out
    if cfg.name == "step":
        step_steps = max(1, cfg.step_size * steps_per_epoch)

        def factor(step: int) -> float:
            return lr_factor(step, total_steps, warmup, cfg, base_lr) * cfg.gamma ** (
                max(0, step - warmup) // step_steps
            )

    elif cfg.name in ("cosine", "none"):
        if cfg.name == "none" and warmup == 0:
            return []

        def factor(step: int) -> float:
            return lr_factor(step, total_steps, warmup, cfg, base_lr)

    else:
        raise ValueError(f"unknown schedule {cfg.name!r}")
    return [{"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step"}]
