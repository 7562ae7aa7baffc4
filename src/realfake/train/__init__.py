"""Training: configs, the LightningModule, callbacks, tracking and ``train(config)``."""

from realfake.train.config import TrainConfig, compose
from realfake.train.run import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "compose", "train"]
