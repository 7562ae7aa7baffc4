"""The one LightningModule: wraps any registry model with loss, optimiser, schedule and metrics."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from realfake.models import build_model
from realfake.train.config import OptimConfig, SchedConfig
from realfake.train.optim import build_optimizer, build_scheduler


def model_from_hparams(hp: dict[str, Any]) -> nn.Module:
    """Rebuild the bare network described by a checkpoint's hyper-parameters."""
    m = hp["model"]
    return build_model(
        m["name"],
        num_classes=len(hp["classes"]),
        image_size=hp["image_size"],
        dropout=m["dropout"],
        block_dropout=m["block_dropout"],
        stem=m["stem"],
        zero_init_residual=m["zero_init_residual"],
        **dict(m.get("options") or {}),  # absent in checkpoints written before it existed
    )


class Classifier(L.LightningModule):
    """Cross-entropy classification of normalised image batches by a registry model.

    ``hparams`` holds only plain types (config dict, classes, normalisation) so that
    checkpoints load with ``torch.load(weights_only=True)`` and can rebuild the model alone.
    """

    def __init__(
        self,
        config: dict[str, Any],
        classes: list[str],
        mean: list[float],
        std: list[float],
        data_fingerprint: str = "",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hp_config = config
        self.model = model_from_hparams(self.hparams_for_model())
        trainer_cfg = config["trainer"]
        self.channels_last = trainer_cfg["channels_last"] is not False  # train() resolves None
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.label_smoothing = float(trainer_cfg["label_smoothing"])
        self.flip_tta = bool(trainer_cfg.get("flip_tta", False))
        num_classes = len(classes)
        task = "binary" if num_classes == 2 else "multiclass"
        kwargs = {"task": task} if task == "binary" else {"task": task, "num_classes": num_classes}
        self.train_acc = torchmetrics.Accuracy(**kwargs)
        self.val_acc = torchmetrics.Accuracy(**kwargs)
        self.test_acc = torchmetrics.Accuracy(**kwargs)
        self._binary = task == "binary"
        self._compiled = False

    def hparams_for_model(self) -> dict[str, Any]:
        return {
            "model": self.hp_config["model"],
            "classes": self.hparams["classes"],
            "image_size": self.hp_config["data"]["image_size"],
        }

    def configure_model(self) -> None:
        if self.hp_config["trainer"]["compile"] and not self._compiled:
            # In-place compile keeps the state-dict keys, so checkpoints stay loadable without it.
            self.model.compile()
            self._compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def _metric_input(self, logits: torch.Tensor) -> torch.Tensor:
        # Binary accuracy takes P(class 1); multiclass takes the logits.
        return logits.softmax(dim=1)[:, 1] if self._binary else logits

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self.train_acc(self._metric_input(logits.detach()), y)
        bs = x.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def _eval_step(self, batch, metric: torchmetrics.Metric, prefix: str) -> None:
        x, y = batch
        logits = self(x).float()
        if self.flip_tta:
            # Mean of the image's and its mirror's probabilities, as the Predictor's flip TTA.
            probs = (logits.softmax(dim=1) + self(x.flip(-1)).float().softmax(dim=1)) / 2
            logits = probs.clamp_min(1e-12).log()  # log-probabilities: softmax gives probs back
        loss = F.cross_entropy(logits, y)
        metric(self._metric_input(logits), y)
        bs = x.shape[0]
        self.log(f"{prefix}/loss", loss, on_epoch=True, prog_bar=prefix == "val", batch_size=bs)
        self.log(f"{prefix}/acc", metric, on_epoch=True, prog_bar=prefix == "val", batch_size=bs)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.val_acc, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.test_acc, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).float().softmax(dim=1)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        sched: dict = self.hp_config["sched"]
        if sched["name"] != "plateau" or sched["warmup_epochs"] <= 0:
            return
        # Linear warm-up in front of ReduceLROnPlateau, which has no warm-up of its own.
        warmup = round(sched["warmup_epochs"] * self.trainer.num_training_batches)
        step = self.trainer.global_step
        if step <= warmup:
            base = self.hp_config["optim"]["lr"]
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = base * min(1.0, (step + 1) / max(1, warmup))

    def configure_optimizers(self):
        optim_cfg = OptimConfig(**{**self.hp_config["optim"]})
        sched_cfg = SchedConfig(**self.hp_config["sched"])
        optimizer = build_optimizer(self.model, optim_cfg)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        sched = build_scheduler(optimizer, sched_cfg, total, per_epoch)
        if sched is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": sched}
