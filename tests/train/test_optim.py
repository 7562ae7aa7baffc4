"""Optimiser parameter groups and learning-rate schedules."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from realfake.train.config import OptimConfig, SchedConfig
from realfake.train.optim import build_optimizer, build_scheduler, param_groups


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_bn_and_bias_are_excluded_from_weight_decay():
    net = _net()
    decay, no_decay = param_groups(net, 5e-4, exclude_bn_bias=True)
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(net[1].weight),
        id(net[1].bias),
        id(net[2].bias),
    }
    assert no_decay["weight_decay"] == 0.0


def test_without_exclusion_one_group_decays_everything():
    opt = build_optimizer(_net(), OptimConfig(name="adamw", exclude_bn_bias_from_decay=False))
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(5e-4)


def test_sgd_is_nesterov():
    opt = build_optimizer(_net(), OptimConfig(name="sgd"))
    assert opt.defaults["nesterov"] is True


def _lrs(cfg: SchedConfig, total=100, per_epoch=10, lr=1.0) -> list[float]:
    opt = torch.optim.SGD(_net().parameters(), lr=lr)
    sched = build_scheduler(opt, cfg, total, per_epoch)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        for entry in sched:
            entry["scheduler"].step()
    return out


def test_cosine_with_warmup_rises_then_decays_to_floor():
    lrs = _lrs(SchedConfig(name="cosine", warmup_epochs=1, min_lr=0.01))
    assert lrs[0] == pytest.approx(0.1)  # step 1 of a 10-step warm-up
    assert max(lrs) == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.01, abs=0.01)
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(lrs[10:]))


def test_onecycle_peaks_at_pct_start():
    lrs = _lrs(SchedConfig(name="onecycle", pct_start=0.3))
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert 25 <= peak <= 32
    assert lrs[-1] < 0.02  # annealed to ~1% of the peak by the last step


def test_step_decays_every_step_size_epochs():
    lrs = _lrs(SchedConfig(name="step", step_size=3, gamma=0.5))
    assert lrs[0] == pytest.approx(1.0)
    assert lrs[30] == pytest.approx(0.5)
    assert lrs[60] == pytest.approx(0.25)


def test_constant_without_warmup_has_no_scheduler():
    opt = torch.optim.SGD(_net().parameters(), lr=1.0)
    assert build_scheduler(opt, SchedConfig(name="none"), 10, 1) == []


def test_plateau_warms_up_then_only_the_plateau_lowers_the_rate():
    opt = torch.optim.SGD(_net().parameters(), lr=1.0)
    cfg = SchedConfig(name="plateau", warmup_epochs=1, gamma=0.5, plateau_patience=0)
    warmup, plateau = (entry["scheduler"] for entry in build_scheduler(opt, cfg, 100, 10))
    rates = []
    for _ in range(10):  # one epoch of warm-up steps
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        warmup.step()
    assert rates[0] == pytest.approx(0.1) and rates[-1] == pytest.approx(1.0)
    plateau.step(1.0)
    plateau.step(2.0)  # no improvement: the plateau halves the rate
    warmup.step()  # later steps of the warm-up scheduler leave it alone
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
