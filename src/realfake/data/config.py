"""Data configuration: plain dataclasses that double as OmegaConf structured configs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from realfake.errors import ConfigError

RESIZE_POLICIES = ("stretch", "center_crop")
# How tile scores become an image's (native tiles): their mean, or the most positive tile's.
TILE_AGGREGATES = ("mean", "max")
FLIP_MODES = ("random", "alternate")
# How training batches are drawn: "none" shuffles the images (every image once an epoch);
# "class" gives every class, "source_class" every (source, class) pair, the same share of an
# epoch's draws, so that a large source or class does not drown a small one.
BALANCE_MODES = ("none", "class", "source_class")


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
    # Against shortcuts (SAFE, Li et al., KDD 2025; off by default, so earlier runs keep their
    # random stream): right-angle rotations (0.75: the four angles equally likely; exact pixel
    # permutations that keep an up-sampler's traces, unlike SAFE's arbitrary angles), colour
    # jitter (SAFE: 0.5 each), and masking 0-75% of the patches (SAFE: p 0.5, 16-px patches
    # at 256 px, scaled with the image size here).
    rotate90_prob: float = 0.0
    jitter_prob: float = 0.0
    jitter_change: float = 0.5  # brightness, contrast and saturation factors ~ U[1 - c, 1 + c]
    mask_prob: float = 0.0
    mask_fraction_max: float = 0.75

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
            "rotate90_prob",
            "jitter_prob",
            "mask_prob",
            "mask_fraction_max",
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
        for name in ("brightness_max_change", "contrast_max_change", "jitter_change"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise _bad(f"augment.{name}", value, "a fraction in (0, 1)")


@dataclass
class ExtraSource:
    """One more data set mixed into a run (``data.extra_sources.KEY``)."""

    source: str | None = None  # a folder, split tree, .zip, .tar(.gz) or .csv manifest
    test_source: str | None = None  # as data.test_source, for this data set
    # As data.source_name: the name of its images, by default from its file or folder name
    # (faces-256/train.tar is "faces-256", as in a run of that data set alone).
    source_name: str | None = None
    # None: the run's own data.val_fraction, data.test_fraction and data.split_seed, so a data
    # set carves the same splits here as it does alone with the same settings.
    val_fraction: float | None = None
    test_fraction: float | None = None
    split_seed: int | None = None
    # As data.source_level: each image's source is this folder level of its path, not the name.
    source_level: int | None = None


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
    # What prediction does with images of another size (recorded in the model spec): 0 brings
    # the whole image to image_size by ``resize``; N > 0 scores up to N native tiles of
    # image_size, never resized, aggregated by ``tile_aggregate`` (mean | max).
    tiles: int = 0
    tile_aggregate: str = "mean"
    # Native-resolution training (for detectors of pixel-level traces: NPR, SAFE, LaDeDa, which
    # resizing erases). True: images are cached at their own size, never resampled; training
    # batches are random image_size crops of them and validation and test score each image by
    # the tile rule prediction uses (so ``tiles`` >= 1 is required). Two exceptions, both
    # counted: an image smaller than image_size on a side is brought to image_size by
    # ``resize`` (the predictor's rule for it), and one larger than ``native_max_side`` on a
    # side keeps its central native_max_side-bounded region, cropped, not resized: the cache's
    # cap of 3·512² bytes (768 KiB) an image by default.
    native: bool = False
    native_max_side: int = 512
    # The most a data set's native pixels may take (cache and memory, GB = 1e9 bytes): a source
    # that would need more is refused before decoding when its image count tells, else when
    # decoding reaches the cap, rather than filling the disk.
    native_max_gb: float = 8.0
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
    # Where each image comes from (its source: a generator, a camera, a data set), reported per
    # source by evaluate. By default every image of a data set has the data set's name: this
    # key, else the file or folder name of data.source without its extension, or its parent
    # folder's name when that is a split name (cifake-sample/train.tar is "cifake-sample"; the
    # embedded set is "cifake-mini"). A manifest's "source" column names each row's source.
    source_name: str | None = None
    # Each image's source is the folder at this level of its path inside data.source (0: the
    # top-level folder): root/<source>/<class>/<image> with 0, root/<class>/<generator>/<image>
    # with 1. That folder is not a class folder: classes and splits are read as if it were not
    # there. None: every image has the data set's name.
    source_level: int | None = None
    # More data sets in the same run: {faces: {source: PATH, test_fraction: 0.1}} (the key is
    # only a handle for the command line: data.extra_sources.faces.source=PATH). Each is decoded
    # at data.image_size with data.resize (at its own size with data.native), read in the run's
    # class order and split on its own (its test/ and val/, or carved per class); train, val and
    # test are the union of every data set's, each image keeping its source.
    extra_sources: dict[str, ExtraSource] = field(default_factory=dict)
    balance: str = "none"  # BALANCE_MODES; "none" keeps every earlier run's batches
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field with an impossible value."""
        if self.tiles < 0:
            raise _bad("tiles", self.tiles, "0 (resize whole images) or a tile count >= 1")
        if self.tile_aggregate not in TILE_AGGREGATES:
            raise _bad("tile_aggregate", self.tile_aggregate, " or ".join(TILE_AGGREGATES))
        if self.resize not in RESIZE_POLICIES:
            raise _bad("resize", self.resize, "one of " + ", ".join(RESIZE_POLICIES))
        if self.image_size < 8:
            # Below 8 px the CIFAR stems' down-sampling leaves nothing to classify.
            raise _bad("image_size", self.image_size, "an integer >= 8")
        self._check_native()
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
        if self.balance not in BALANCE_MODES:
            raise _bad("balance", self.balance, "one of " + ", ".join(BALANCE_MODES))
        if self.source_name is not None and not self.source_name.strip():
            raise _bad("source_name", self.source_name, "a non-empty name or null")
        if self.source_level is not None and self.source_level < 0:
            raise _bad("source_level", self.source_level, "an integer >= 0 or null")
        if self.source_name is not None and self.source_level is not None:
            raise ConfigError(
                f"data config fields 'source_name' ({self.source_name!r}) and 'source_level' "
                f"({self.source_level}) are both set; expected one of them: a name for every "
                "image, or a folder level that names each image's source"
            )
        for name, extra in self.extra_sources.items():
            if isinstance(extra, ExtraSource):
                _check_extra(name, extra, self.val_fraction, self.test_fraction)
        if isinstance(self.augment, AugmentConfig):
            self.augment.validate()

    def _check_native(self) -> None:
        """Raise ConfigError naming the first native-resolution field with an impossible value."""
        if not isinstance(self.native, bool):
            raise _bad("native", self.native, "true or false")
        if self.native_max_side < 1 or (self.native and self.native_max_side < self.image_size):
            raise _bad(
                "native_max_side",
                self.native_max_side,
                f"an integer >= image_size ({self.image_size}), the side of a training crop",
            )
        gb = self.native_max_gb
        if not (isinstance(gb, (int, float)) and math.isfinite(gb) and gb > 0):
            raise _bad("native_max_gb", gb, "a number of gigabytes > 0")
        if not self.native:
            return
        if self.tiles < 1:
            raise _bad(
                "tiles",
                self.tiles,
                "a tile count >= 1 with data.native=true (validation, test and prediction "
                "score such a model by its tiles)",
            )
        # Padding would put reflected pixels at a crop's border, seams no camera or generator
        # makes; the random crop of the native image already shifts by whole pixels.
        if isinstance(self.augment, AugmentConfig) and self.augment.crop_padding != 0:
            raise _bad(
                "augment.crop_padding",
                self.augment.crop_padding,
                "0 with data.native=true (the random native crop is the shift; padding would "
                "add reflected pixels)",
            )


def _check_extra(name: str, extra: ExtraSource, val: float, test: float) -> None:
    """Raise ConfigError naming the first impossible field of ``data.extra_sources.NAME``."""
    where = f"extra_sources.{name}"
    if not name.strip():
        raise _bad("extra_sources", name, "a non-empty name for each data set")
    if not extra.source:
        raise ConfigError(
            f"data config field '{where}.source' is not set; expected the data set's folder, "
            "archive or manifest (as data.source)"
        )
    for field_name in ("val_fraction", "test_fraction"):
        value = getattr(extra, field_name)
        if value is not None and not 0.0 <= value < 1.0:
            raise _bad(f"{where}.{field_name}", value, "a fraction in [0, 1) or null")
    val = val if extra.val_fraction is None else extra.val_fraction
    test = test if extra.test_fraction is None else extra.test_fraction
    if val + test >= 1.0:
        raise _bad(
            f"{where}: val_fraction + test_fraction",
            val + test,
            "a sum below 1 so that some training images remain",
        )
    if extra.source_name is not None and not extra.source_name.strip():
        raise _bad(f"{where}.source_name", extra.source_name, "a non-empty name or null")
    if extra.source_level is not None and extra.source_level < 0:
        raise _bad(f"{where}.source_level", extra.source_level, "an integer >= 0 or null")
    if extra.source_name is not None and extra.source_level is not None:
        raise ConfigError(
            f"data config fields '{where}.source_name' and '{where}.source_level' are both set; "
            "expected one of them: a name for every image, or a folder level that names each "
            "image's source"
        )
