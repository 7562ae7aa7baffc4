"""Data configuration: plain dataclasses that double as OmegaConf structured configs."""

from __future__ import annotations

from dataclasses import dataclass, field

from realfake.errors import ConfigError

RESIZE_POLICIES = ("stretch", "center_crop")
FLIP_MODES = ("random", "alternate")


def _bad(name: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"bad value for data config field '{name}': {value!r}; expected {expected}")


@dataclass
class AugmentConfig:
    flip: bool = True  # horizontal flip of half the training images
    # "random": each image flipped with p = 0.5 in every epoch. "alternate": flipped at random in
    # the first epoch, then the other way round in each epoch after, so every pair of epochs
    # shows each image both ways (airbench's derandomised flip, Jordan 2024).
    flip_mode: str = "random"
    # Pad-and-random-crop in pixels at 32 px (scaled with the image size); 0 disables.
    crop_padding: int = 4
    # Robust training (CNNDetection, Wang et al. CVPR 2020: blur σ ~ U[0, 3] and JPEG quality
    # ~ U{30..100}, each with p = 0.5, at 224-256 px). Probabilities are per image; 0 = off.
    # Levels are drawn per image in the units of the robustness grid's kinds
    # (realfake.data.perturbations.KINDS), on the training image as the model sees it.
    blur_prob: float = 0.0
    # σ ~ U[0, max], KINDS["blur"] (not scaled with the image size). CNNDetection's σ ≤ 3 at
    # 256 px is ≤ 0.4 at 32 px; 1.0 also covers the robustness grid's blur:1.
    blur_sigma_max: float = 1.0
    jpeg_prob: float = 0.0
    jpeg_quality_min: int = 30  # quality ~ U{min..max}, KINDS["jpeg"], as CNNDetection
    jpeg_quality_max: int = 100
    noise_prob: float = 0.0
    noise_sigma_max: float = 0.05  # σ ~ U[0, max], KINDS["noise"]
    resize_prob: float = 0.0
    resize_scale_min: float = 0.5  # factor ~ U[min, 1], KINDS["resize"]
    zoom_prob: float = 0.0
    zoom_fraction_min: float = 0.8  # kept central fraction ~ U[min, 1], KINDS["crop"]
    brightness_prob: float = 0.0
    brightness_max_change: float = 0.3  # factor ~ U[1 - c, 1 + c], KINDS["brightness"]
    contrast_prob: float = 0.0
    contrast_max_change: float = 0.3  # factor ~ U[1 - c, 1 + c], KINDS["contrast"]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field with an impossible value."""
        if self.flip_mode not in FLIP_MODES:
            raise _bad("augment.flip_mode", self.flip_mode, " or ".join(FLIP_MODES))
        if self.crop_padding < 0:
            raise _bad("augment.crop_padding", self.crop_padding, "an integer >= 0")
        for name in (
            "blur_prob",
            "jpeg_prob",
            "noise_prob",
            "resize_prob",
            "zoom_prob",
            "brightness_prob",
            "contrast_prob",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise _bad(f"augment.{name}", value, "a probability in [0, 1]")
        for name in ("blur_sigma_max", "noise_sigma_max"):
            value = getattr(self, name)
            if not value > 0:
                raise _bad(f"augment.{name}", value, "a number > 0")
        if not 1 <= self.jpeg_quality_min <= 100:
            raise _bad("augment.jpeg_quality_min", self.jpeg_quality_min, "an integer in [1, 100]")
        if not self.jpeg_quality_min <= self.jpeg_quality_max <= 100:
            raise _bad(
                "augment.jpeg_quality_max",
                self.jpeg_quality_max,
                f"an integer in [jpeg_quality_min={self.jpeg_quality_min}, 100]",
            )
        for name in ("resize_scale_min", "zoom_fraction_min"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise _bad(f"augment.{name}", value, "a fraction in (0, 1]")
        for name in ("brightness_max_change", "contrast_max_change"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise _bad(f"augment.{name}", value, "a fraction in (0, 1)")


@dataclass
class DataConfig:
    # A folder, split tree, .zip, .tar(.gz) or .csv manifest; None = the embedded CIFAKE mini.
    source: str | None = None
    # Where the test split comes from when it lives apart from the training data (CIFAKE's
    # train.tar + test.tar): its test/ split, or all of it when it has a single split.
    test_source: str | None = None
    image_size: int = 32
    # "stretch": bilinear (antialiased) resize to size×size, aspect ratio not kept;
    # "center_crop": the largest centred square, resized to size×size.
    resize: str = "stretch"
    val_fraction: float = 0.1  # carved from train per class; ignored when the source has val/
    test_fraction: float = 0.0  # only for sources without a test split; 0 = no test split
    split_seed: int = 0
    batch_size: int = 128
    eval_batch_size: int = 512
    num_workers: int = 0  # batches are slices of an in-memory tensor, so 0 is usually fastest
    cache_dir: str | None = None  # None: $REALFAKE_CACHE or ~/.cache/realfake
    strict: bool = False  # images that fail to decode are an error instead of a warning
    drop_test_duplicates: bool = False  # drop train images byte-identical to a test image
    classes: list[str] | None = None  # impose a class order (e.g. a checkpoint's)
    # Two classes: the one binary metrics and thresholds call positive. None: FAKE when present
    # (detection), else the second class. Recorded in the run's model spec.
    positive_class: str | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field with an impossible value."""
        if self.resize not in RESIZE_POLICIES:
            raise _bad("resize", self.resize, "one of " + ", ".join(RESIZE_POLICIES))
        if self.image_size < 8:
            # Below 8 px the CIFAR stems' down-sampling leaves nothing to classify.
            raise _bad("image_size", self.image_size, "an integer >= 8")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise _bad(name, value, "a fraction in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise _bad(
                "val_fraction + test_fraction",
                self.val_fraction + self.test_fraction,
                "a sum below 1 so that some training images remain",
            )
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise _bad(name, getattr(self, name), "an integer >= 1")
        if self.num_workers < 0:
            raise _bad("num_workers", self.num_workers, "an integer >= 0")
        if self.classes is not None:
            names = list(self.classes)
            if not names or len(set(names)) != len(names) or not all(names):
                raise _bad("classes", names, "a list of distinct, non-empty class names")
        if isinstance(self.augment, AugmentConfig):
            self.augment.validate()
