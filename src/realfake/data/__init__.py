"""Data layer: any image source -> cached uint8 tensors -> normalised, augmented batches.

Only the configs load eagerly; everything that imports torch or Lightning is loaded on first
use (PEP 562), so reading a config or ``realfake --help`` does not pay several seconds of imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from realfake._lazy import lazy_exports
from realfake.data.config import RESIZE_POLICIES, AugmentConfig, DataConfig
from realfake.data.embedded import embedded_data_path

if TYPE_CHECKING:
    from realfake.data.augment import normalize, random_crop, random_flip
    from realfake.data.cache import default_cache_dir
    from realfake.data.cifar10 import CIFAR10_CLASSES, export_cifar10
    from realfake.data.datamodule import ImageDataModule
    from realfake.data.info import DataInfo, describe_source
    from realfake.data.layout import CIFAKE_CLASSES, SPLIT_NAMES
    from realfake.data.loader import ImageSplit, LoadedData, SkippedImagesWarning, load_images
    from realfake.data.sources import IMAGE_EXTENSIONS

_LAZY = {
    "normalize": "augment",
    "random_crop": "augment",
    "random_flip": "augment",
    "default_cache_dir": "cache",
    "CIFAR10_CLASSES": "cifar10",
    "export_cifar10": "cifar10",
    "ImageDataModule": "datamodule",
    "DataInfo": "info",
    "describe_source": "info",
    "CIFAKE_CLASSES": "layout",
    "SPLIT_NAMES": "layout",
    "ImageSplit": "loader",
    "LoadedData": "loader",
    "SkippedImagesWarning": "loader",
    "load_images": "loader",
    "IMAGE_EXTENSIONS": "sources",
}

__all__ = [
    "CIFAKE_CLASSES",
    "CIFAR10_CLASSES",
    "IMAGE_EXTENSIONS",
    "RESIZE_POLICIES",
    "SPLIT_NAMES",
    "AugmentConfig",
    "DataConfig",
    "DataInfo",
    "ImageDataModule",
    "ImageSplit",
    "LoadedData",
    "SkippedImagesWarning",
    "default_cache_dir",
    "describe_source",
    "embedded_data_path",
    "export_cifar10",
    "load_images",
    "normalize",
    "random_crop",
    "random_flip",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
