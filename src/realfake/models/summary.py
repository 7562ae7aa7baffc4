"""What a model costs: per-layer output shapes and parameters, total MACs and parameter memory.

MACs come from torch's own `FlopCounterMode` (FLOPs of convolutions and matrix products, halved),
not a hand-written per-layer formula; a meta-device model is counted without computing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class LayerSummary:
    """One call of one submodule during a forward pass of a single image."""

    name: str
    kind: str
    depth: int
    is_leaf: bool
    output_shape: tuple[int, ...] | None
    params: int


@dataclass(frozen=True)
class ModelSummary:
    """Per-layer rows in call order and totals for one image."""

    rows: list[LayerSummary]
    total_params: int
    trainable_params: int
    macs: int
    param_bytes: int


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with requires_grad when `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, image_size: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on one image_size × image_size image."""
    return summarize(model, image_size, in_channels, per_layer=False).macs


def summarize(
    model: nn.Module, image_size: int, in_channels: int = 3, per_layer: bool = True
) -> ModelSummary:
    """Run one image through `model` in eval mode and report its layers, parameters and MACs."""
    rows: list[_Row] = []
    handles = []
    if per_layer:
        seen: set[int] = set()
        for name, module in model.named_modules():
            if module is model:
                continue
            handles.append(module.register_forward_pre_hook(_record_call(rows, name, seen)))
            handles.append(module.register_forward_hook(_record_output(rows, module)))
    device = next(model.parameters(), torch.empty(0)).device
    image = torch.zeros(1, in_channels, image_size, image_size, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(image)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return ModelSummary(
        rows=[row.freeze() for row in rows],
        total_params=count_params(model),
        trainable_params=count_params(model, trainable_only=True),
        macs=counter.get_total_flops() // 2,
        param_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
    )


@dataclass
class _Row:
    name: str
    module: nn.Module
    params: int
    output_shape: tuple[int, ...] | None = None
    finished: bool = False

    def freeze(self) -> LayerSummary:
        return LayerSummary(
            name=self.name,
            kind=type(self.module).__name__,
            depth=self.name.count(".") + 1,
            is_leaf=next(self.module.children(), None) is None,
            output_shape=self.output_shape,
            params=self.params,
        )


def _record_call(rows: list[_Row], name: str, seen: set[int]):
    # A pre-hook, so that a block's row comes before the rows of the layers inside it.
    def hook(module: nn.Module, _inputs: object) -> None:
        # A module called twice (a block's shared ReLU) counts its parameters once.
        params = 0 if id(module) in seen else count_params(module)
        seen.add(id(module))
        rows.append(_Row(name, module, params))

    return hook


def _record_output(rows: list[_Row], module: nn.Module):
    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        # Fill the latest open row of this module: its children's rows were appended after it.
        row = next(r for r in reversed(rows) if r.module is module and not r.finished)
        row.finished = True
        if isinstance(output, torch.Tensor):
            row.output_shape = tuple(output.shape[1:])

    return hook
