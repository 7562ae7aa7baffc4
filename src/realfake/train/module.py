"""The one LightningModule: a plain network trained with loss, optimiser, schedule and metrics."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from realfake.attacks import Attack, make_attack
from realfake.data.augment import normalize
from realfake.data.tiles import aggregate_tiles, image_tiles
from realfake.inference import tta_probabilities
from realfake.runs import ModelSpec
from realfake.runs.rundir import SPEC_KEY
from realfake.train.config import TrainConfig, to_dict
from realfake.train.optim import build_optimizer, build_scheduler


class Classifier(L.LightningModule):
    """Cross-entropy classification of normalised image batches by ``model``.

    The network is built outside (from the spec) and handed in. The checkpoint's
    hyper-parameters hold only plain types (the config and the spec as dicts), and the spec is
    also stored under ``model_spec``, so checkpoints load with ``torch.load(weights_only=True)``
    and rebuild the network without this class.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec, config: TrainConfig) -> None:
        super().__init__()
        self.save_hyperparameters({"config": to_dict(config), "spec": spec.to_dict()})
        self.spec = spec
        self.config = config
        t = config.trainer
        self.channels_last = t.channels_last is not False  # train() resolves None
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.label_smoothing = float(t.label_smoothing)
        self.flip_tta = bool(t.flip_tta)
        # data.native: validation and test batches are whole native images, scored by tiles.
        self.native = bool(config.data.native)
        n = len(spec.classes)
        kwargs: dict[str, Any] = {"task": "binary"} if n == 2 else {"task": "multiclass"}
        if n != 2:
            kwargs["num_classes"] = n
        # torchmetrics objects sum over every batch and, under DDP, over every process.
        self.train_acc = torchmetrics.Accuracy(**kwargs)
        self.val_acc = torchmetrics.Accuracy(**kwargs)
        self.test_acc = torchmetrics.Accuracy(**kwargs)
        self.train_loss = torchmetrics.MeanMetric()
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()
        # Images scored, summed over processes: each once, none repeated to even out shards.
        self.val_images = torchmetrics.SumMetric()
        self.test_images = torchmetrics.SumMetric()
        self._binary = n == 2
        self._compiled = False
        adv = config.adversarial
        self.attack: Attack | None = (
            None if adv.attack == "none" else make_attack(adv.attack, adv.eps, adv.steps, adv.alpha)
        )

    def configure_model(self) -> None:
        if self.config.trainer.compile and not self._compiled:
            # In-place compile keeps the state-dict keys, so checkpoints stay loadable without it.
            self.model.compile()
            self._compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def _metric_input(self, probs: torch.Tensor) -> torch.Tensor:
        # Binary accuracy takes P(class 1) (cut at 0.5 = the arg-max); multiclass takes scores.
        return probs[:, 1] if self._binary else probs

    def attacked(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The normalised batch ``x`` replaced by its attack on the network as it is now.

        Adversarial training (``adversarial.attack``). The attack runs on the pixel scale (the
        spec's normalisation undone, ε in 1/255 as the robustness grid's), against plain
        cross-entropy (no label smoothing, as Wong et al. 2020) of the network in training mode,
        as their fast adversarial training does (BatchNorm sees the attack's passes too). The
        random start draws from the global generator, which ``StepSeed`` reseeds at every step:
        a resumed run attacks exactly as an uninterrupted one.
        """
        assert self.attack is not None
        mean = x.new_tensor(self.spec.mean).view(1, -1, 1, 1)
        std = x.new_tensor(self.spec.std).view(1, -1, 1, 1)

        def loss(pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self((pixels - mean) / std), labels, reduction="none")

        pixels = (x * std + mean).clamp_(0, 1)
        return (self.attack(loss, pixels, y) - mean) / std

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        if self.attack is not None:
            # Adversarial training: train/loss and train/acc are those of the attacked batch.
            x = self.attacked(x, y)
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        bs = x.shape[0]
        self.train_acc(self._metric_input(logits.detach().softmax(dim=1)), y)
        self.train_loss(loss.detach(), weight=bs)
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True, batch_size=bs)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def tile_probabilities(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Class probabilities (N×C) of whole native uint8 images, each scored by the spec's
        tiles and aggregated by its rule, exactly as the predictor scores an image."""
        spec = self.spec
        tiles = [
            image_tiles(im, spec.image_size, spec.tiles, spec.resize, spec.native_max_side)
            for im in images
        ]
        x = normalize(torch.cat(tiles), spec.mean, spec.std)
        # All tiles of the batch in one pass (the network scores each tile on its own).
        probs = tta_probabilities(self, x, self.flip_tta)
        per_image = probs.split([len(t) for t in tiles])
        return torch.stack(
            [aggregate_tiles(p, spec.tile_aggregate, spec.positive) for p in per_image]
        )

    def _eval_step(self, batch, accuracy, mean_loss, images, prefix: str) -> torch.Tensor:
        x, y = batch
        if self.native:
            probs = self.tile_probabilities(x)
        else:
            # The predictor's own function: what a run reports is what its predictor reproduces.
            probs = tta_probabilities(self, x, self.flip_tta)
        loss = F.nll_loss(probs.clamp_min(1e-12).log(), y)
        bs = len(x)
        accuracy(self._metric_input(probs), y)
        mean_loss(loss, weight=bs)
        images(bs)
        shown = prefix == "val"
        self.log(f"{prefix}/loss", mean_loss, on_epoch=True, prog_bar=shown, batch_size=bs)
        self.log(f"{prefix}/acc", accuracy, on_epoch=True, prog_bar=shown, batch_size=bs)
        self.log(f"{prefix}/images", images, on_step=False, on_epoch=True, batch_size=bs)
        return probs.detach()

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Per-image probabilities of the batch (what val/acc and val/loss were computed from)."""
        return self._eval_step(batch, self.val_acc, self.val_loss, self.val_images, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Per-image probabilities of the batch (what test/acc and test/loss were computed from)."""
        return self._eval_step(batch, self.test_acc, self.test_loss, self.test_images, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SPEC_KEY] = self.spec.to_dict()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.config.optim)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        schedulers = build_scheduler(optimizer, self.config.sched, total, per_epoch)
        if not schedulers:
            return optimizer
        return [optimizer], schedulers
