"""A trained classifier loaded from a checkpoint, ready to turn uint8 images into probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from realfake.data import normalize
from realfake.train.checkpoint import load_checkpoint, resolve_checkpoint
from realfake.train.module import model_from_hparams


@dataclass
class Predictor:
    """Network, class list and preprocessing of one checkpoint (no Lightning needed)."""

    model: nn.Module
    classes: list[str]
    image_size: int
    resize: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    config: dict[str, Any]
    checkpoint: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_checkpoint(cls, ref: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """Load a checkpoint file, or a run directory's best (else last) checkpoint."""
        path = resolve_checkpoint(ref)
        ckpt = load_checkpoint(path)
        hp = ckpt["hyper_parameters"]
        config = hp["config"]
        hparams = {
            "model": config["model"],
            "classes": hp["classes"],
            "image_size": config["data"]["image_size"],
        }
        model = model_from_hparams(hparams)
        prefix = "model."
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        model.load_state_dict(state)
        device = torch.device(device)
        model.to(device).eval()
        return cls(
            model=model,
            classes=list(hp["classes"]),
            image_size=int(config["data"]["image_size"]),
            resize=str(config["data"]["resize"]),
            mean=tuple(hp["mean"]),  # type: ignore[arg-type]
            std=tuple(hp["std"]),  # type: ignore[arg-type]
            config=config,
            checkpoint=path,
            device=device,
        )

    @property
    def flip_tta(self) -> bool:
        """Whether the run validated and tested with flip TTA (older runs: no)."""
        return bool(self.config.get("trainer", {}).get("flip_tta", False))

    def resolve_tta(self, tta: bool | None) -> bool:
        """``tta`` as asked, or the run's own choice when None."""
        return self.flip_tta if tta is None else bool(tta)

    @torch.inference_mode()
    def predict_proba(
        self, images: torch.Tensor, batch_size: int = 256, flip_tta: bool = False
    ) -> torch.Tensor:
        """Class probabilities (N×C, float32, CPU) for uint8 images N×3×H×W of the model's size."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images N×3×H×W, got shape {tuple(images.shape)}")
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(
                f"images are {images.shape[-2]}×{images.shape[-1]} but the model was trained at "
                f"{self.image_size}×{self.image_size}; load them with image_size={self.image_size}"
            )
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(self.device, non_blocking=True)
            x = normalize(x, self.mean, self.std)
            logits = self.model(x).float()
            probs = logits.softmax(dim=1)
            if flip_tta:
                # Averaging over the mirror image: a free, label-preserving second opinion.
                probs = (probs + self.model(x.flip(-1)).float().softmax(dim=1)) / 2
            out.append(probs.cpu())
        if not out:
            return torch.empty(0, len(self.classes))
        return torch.cat(out)
