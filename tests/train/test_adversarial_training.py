"""Adversarial training (``experiment=adversarial``): its options, its training step, a real run."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F

from realfake.errors import ConfigError
from realfake.runs import ModelSpec
from realfake.train import compose, train
from realfake.train import config as C
from realfake.train.module import Classifier


def test_adversarial_experiment_is_pgd_training_of_two_steps() -> None:
    cfg = C.to_object(compose(["experiment=demo", "experiment=adversarial"]))
    assert (cfg.adversarial.attack, cfg.adversarial.alpha, cfg.adversarial.steps) == (
        "pgd", 2, 2)  # fmt: skip
    # The steps together move a pixel by up to ε, the ball's radius.
    assert cfg.adversarial.steps * cfg.adversarial.alpha >= cfg.adversarial.eps
    assert 0 < cfg.adversarial.eps <= 8
    assert cfg.trainer.max_epochs == compose(["experiment=demo"]).trainer.max_epochs  # a diff
    assert C.to_object(compose([])).adversarial.attack == "none"  # off by default


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["adversarial.attack=cw"], "allowed: none, fgsm_rs, fgsm, pgd"),
        (["adversarial.attack=pgd", "adversarial.eps=0"], "'adversarial.eps': 0.0; expected"),
        (["adversarial.attack=fgsm_rs", "adversarial.eps=300"], "(0, 255]"),
        (["adversarial.attack=pgd", "adversarial.alpha=-1"], "'adversarial.alpha'"),
        (["adversarial.attack=fgsm_rs", "adversarial.steps=5"], "steps apply to"),
        (["adversarial.attack=pgd", "adversarial.steps=0"], "integer >= 1"),
        (["adversarial.epsilon=4"], "unknown config key 'adversarial.epsilon'"),
        (["adversarial=fgsm_rs"], "is a section"),
    ],
)
def test_bad_adversarial_options_stop_with_one_sentence(overrides: list[str], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose(overrides)
    assert words in str(info.value)


@pytest.mark.slow
def test_training_step_attacks_the_batch_within_eps() -> None:
    spec = ModelSpec(
        model="fastnet", classes=("FAKE", "REAL"), image_size=32, resize="stretch",
        mean=(0.5, 0.45, 0.4), std=(0.25, 0.24, 0.26), flip_tta=True, positive_class="FAKE",
    )  # fmt: skip
    torch.manual_seed(0)
    cfg = C.to_object(compose(["experiment=adversarial", "adversarial.eps=4"]))
    module = Classifier(spec.build_model(), spec, cfg).train()
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 2, (16,))
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    x = (images / 255 - mean) / std
    attacked = module.attacked(x, y)
    step = (attacked - x) * std * 255  # back in pixel units
    assert float(step.abs().max()) <= 4 + 1e-3
    assert float(step.abs().max()) > 3.9  # the steps reach the edge of the ball
    pixels = attacked * std + mean
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    with torch.no_grad():
        assert F.cross_entropy(module(attacked), y) > F.cross_entropy(module(x), y)
    assert all(p.grad is None for p in module.parameters())  # the optimiser's gradients only


def _train_loss(run) -> list[float]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [float(row["train_loss"]) for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_adversarial_run_trains_on_attacked_batches(tmp_path, tiny_run, tiny_overrides) -> None:
    # The session's tiny run is the same training (seed, data order, initial weights) on clean
    # batches: its first steps see the same images unattacked, so a lower loss.
    overrides = [*tiny_overrides, "experiment=adversarial", f"runs_dir={tmp_path}", "name=adv"]
    result = train(compose(overrides))
    config = (result.run_dir / "config.yaml").read_text()
    assert "adversarial:\n  attack: pgd" in config
    assert result.metrics["epochs"] == 2
    adversarial, clean = _train_loss(result.run_dir), _train_loss(tiny_run)
    assert adversarial[0] > clean[0]
