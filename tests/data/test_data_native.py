"""Native resolution (data.native): images cached at their own size, random crops to train on,
whole images to validate on, small images resized by the predictor's rule, and the caps."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realfake.data import decode
from realfake.data.batches import EpochDraws, NativeCropDataset, make_loader
from realfake.data.config import AugmentConfig, DataConfig
from realfake.data.loader import ImageSplit, ResizedImagesWarning, load_images
from realfake.data.ragged import RaggedImages
from realfake.errors import ConfigError, DataError
from realfake.inference import Predictor
from realfake.runs import ModelSpec


def _pattern(h: int, w: int, tag: int) -> torch.Tensor:
    """A 3×h×w image whose every pixel says where it is: (row, column, tag)."""
    rows = torch.arange(h, dtype=torch.uint8).view(h, 1).expand(h, w)
    cols = torch.arange(w, dtype=torch.uint8).view(1, w).expand(h, w)
    return torch.stack([rows, cols, torch.full((h, w), tag, dtype=torch.uint8)])


def _split(images: list[torch.Tensor]) -> ImageSplit:
    return ImageSplit(
        images=RaggedImages.from_images(images),
        labels=torch.arange(len(images)) % 2,
        names=[f"{i}.png" for i in range(len(images))],
    )


def _write(root: Path, sizes: dict[str, list[tuple[int, int]]], seed: int = 0) -> Path:
    """A labelled folder FAKE/ REAL/ of random PNGs of the given (width, height) per class."""
    rng = np.random.default_rng(seed)
    for cls, shapes in sizes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, (w, h) in enumerate(shapes):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


def _crop_corners(batch: torch.Tensor) -> list[tuple[int, int, int]]:
    """(tag, y, x) of each crop of ``_pattern`` images, read from its top-left pixel."""
    return [(int(c[2, 0, 0]), int(c[0, 0, 0]), int(c[1, 0, 0])) for c in batch]


def test_crops_are_native_pixels_that_move_with_the_epoch_and_repeat_with_the_seed():
    images = [_pattern(40, 56, 0), _pattern(24, 24, 1), _pattern(64, 30, 2), _pattern(16, 90, 3)]
    split = _split(images)

    def epoch(e: int, seed: int = 7) -> torch.Tensor:
        loader = make_loader(split, 4, shuffle_seed=seed, native_crop=16)
        loader.sampler.set_epoch(e)  # as Lightning does before each epoch
        (batch, _), *rest = list(loader)
        assert not rest and batch.shape == (4, 3, 16, 16) and batch.dtype == torch.uint8
        return batch

    first = epoch(0)
    for crop, (tag, y, x) in zip(first, _crop_corners(first), strict=True):
        # An exact sub-array of the image at its own size: never resampled.
        assert torch.equal(crop, images[tag][:, y : y + 16, x : x + 16])
    assert torch.equal(epoch(0), first)  # the same (seed, epoch): the same crops
    moved = {c[0]: c[1:] for c in _crop_corners(epoch(1))}
    before = {c[0]: c[1:] for c in _crop_corners(first)}
    # Another epoch crops elsewhere (the 24×24 image has 81 places, the others more).
    assert sum(moved[t] != before[t] for t in before) >= 3
    other = {c[0]: c[1:] for c in _crop_corners(epoch(0, seed=8))}
    assert other != before  # another seed, other crops


def test_a_mirrored_draw_is_the_mirrored_crop_and_a_repeated_draw_another_crop():
    from realfake.train.datamodule import BalancedSampler

    images = [_pattern(48, 48, tag) for tag in range(6)]
    one_size = replace(_split(images), images=torch.stack(images))  # a tensor, as faces_native
    dataset = NativeCropDataset(one_size, 16, seed=0)
    plain, _ = dataset.__getitems__([(3, 1, 0)])
    mirrored, _ = dataset.__getitems__([(3, 1 + 6, 0)])  # index + n: the mirror convention
    assert torch.equal(mirrored, plain.flip(-1))
    # Balanced draws: image 5 is a group of its own, drawn 3 times an epoch, each another crop.
    draws = EpochDraws(BalancedSampler(np.array([0, 0, 0, 0, 0, 1]), seed=0))
    draws.set_epoch(2)
    keys = list(draws)
    assert sorted(k[2] for k in keys if k[1] == 5) == [0, 1, 2]
    assert all(k[0] == 2 for k in keys)  # the epoch travels with every draw
    crops, labels = dataset.__getitems__([k for k in keys if k[1] == 5])
    corners = {c[1:] for c in _crop_corners(crops)}
    assert len(corners) == 3 and labels.tolist() == [1, 1, 1]
    for crop, (tag, y, x) in zip(crops, _crop_corners(crops), strict=True):
        assert torch.equal(crop, images[tag][:, y : y + 16, x : x + 16])


def _tile_predictor(size: int) -> Predictor:
    """A predictor whose spec tiles at ``size`` px (its weights play no part in tiling)."""
    spec = ModelSpec(
        model="fastnet", classes=("FAKE", "REAL"), image_size=size, resize="stretch",
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), flip_tta=False, positive_class="FAKE",
        tiles=4,
    )  # fmt: skip
    return Predictor(spec.build_model(), spec)


def test_a_small_image_is_resized_as_the_predictor_tiles_it_and_the_warning_counts_it(tmp_path):
    root = _write(tmp_path / "d", {"FAKE": [(12, 10), (40, 40), (9, 30)], "REAL": [(40, 40)] * 3})
    with pytest.warns(ResizedImagesWarning) as caught:
        data = load_images(root, 16, native=True)
    # Once for the load, naming how many and one of them with its own size.
    assert len(caught) == 1
    assert str(caught[0].message).startswith(f"2 images of {root} are smaller than 16 px")
    assert "FAKE/0.png, 12×10" in str(caught[0].message)
    split = data.splits["train"]
    predictor = _tile_predictor(16)
    for name, image in zip(split.names, split.images, strict=True):
        # The predictor's own tiles of the file: the one rule for both.
        tiles = predictor.tiles(predictor.native(root / name))
        if name in ("FAKE/0.png", "FAKE/2.png"):
            assert tiles.shape == (1, 3, 16, 16) and torch.equal(image, tiles[0])
        else:
            assert image.shape == (3, 40, 40)  # 40×40 is kept whole
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResizedImagesWarning)
        load_images(
            _write(tmp_path / "big", {"FAKE": [(20, 20)], "REAL": [(20, 20)]}), 16, native=True
        )


def test_a_large_image_keeps_its_central_region_and_the_byte_cap_refuses(tmp_path, cache_env):
    pixels = np.random.default_rng(1).integers(0, 256, (100, 60, 3), dtype=np.uint8)
    root = tmp_path / "d"
    (root / "FAKE").mkdir(parents=True)
    (root / "REAL").mkdir()
    Image.fromarray(pixels).save(root / "FAKE" / "big.png")
    Image.fromarray(pixels[:30, :30]).save(root / "REAL" / "small.png")
    data = load_images(root, 16, native=True, native_max_side=40)
    images = dict(zip(data.splits["train"].names, data.splits["train"].images, strict=True))
    # Cropped, not resized: rows 30..69 and columns 10..49 of the 100×60 photo.
    assert torch.equal(
        images["FAKE/big.png"], torch.from_numpy(pixels[30:70, 10:50].transpose(2, 0, 1).copy())
    )
    assert images["REAL/small.png"].shape == (3, 30, 30)
    assert data.splits["train"].sizes.tolist() == [[60, 100], [30, 30]]  # original (w, h)
    # 2 images of at least 16² px need 1,536 bytes: refused before anything is decoded.
    with pytest.raises(DataError, match=r"exceed data\.native_max_gb = 1e-06 GB") as before:
        load_images(root, 16, native=True, native_max_side=41, native_max_gb=1e-6)
    assert "2 images of 16×16 px or more" in str(before.value)
    # 42²·3 + 30²·3 = 7,992 bytes against a cap of 3,000: refused as decoding reaches it.
    with pytest.raises(
        DataError, match=r"data\.native_max_gb = 3e-06 GB \(7\.99e-06 GB after 2 of 2 images\)"
    ):
        load_images(root, 16, native=True, native_max_side=42, native_max_gb=3e-6)
    assert not [p for p in cache_env.iterdir() if p.name.startswith(".tmp-")]  # nothing half
    # The entry cached under the default cap is refused under a lower one, without decoding.
    with pytest.raises(DataError, match="native_max_gb"):
        load_images(root, 16, native=True, native_max_side=40, native_max_gb=5e-6)


def test_the_ragged_store_subsets_and_concatenates_image_by_image():
    rng = np.random.default_rng(2)
    images = [torch.from_numpy(rng.integers(0, 256, s, dtype=np.uint8)) for s in
              [(3, 5, 7), (3, 9, 4), (3, 5, 7), (3, 6, 6)]]  # fmt: skip
    ragged = RaggedImages.from_images(images)
    assert len(ragged) == 4 and ragged.nbytes == sum(i.numel() for i in images)
    assert all(torch.equal(a, b) for a, b in zip(ragged, images, strict=True))
    # The training statistics count every pixel of every image once, whatever its size.
    every = torch.cat([im.reshape(3, -1) for im in images], dim=1).double() / 255
    mean, std = ragged.channel_stats()
    assert np.allclose(mean, every.mean(1)) and np.allclose(std, every.std(1, correction=0))
    picked = ragged.subset([3, 0])
    assert torch.equal(picked[0], images[3]) and torch.equal(picked[1], images[0])
    assert torch.equal(ragged[torch.tensor([1])][0], images[1])  # fancy indexing, as a tensor's
    split = ImageSplit(
        ragged, torch.tensor([0, 1, 0, 1]), list("abcd"), sizes=np.arange(8).reshape(4, 2)
    )
    halves = [split.subset([2, 3]), split.subset([0, 1])]
    back = ImageSplit.concat(halves)
    assert back.names == list("cdab") and back.labels.tolist() == [0, 1, 0, 1]
    assert [torch.equal(a, images[i]) for a, i in zip(back.images, [2, 3, 0, 1], strict=True)]
    assert back.sizes.tolist() == [[4, 5], [6, 7], [0, 1], [2, 3]]
    # Tensors of two sizes (a 32-px and a 256-px data set) become ragged, in order.
    small = ImageSplit(
        torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["s0", "s1"]
    )
    large = ImageSplit(torch.ones(1, 3, 8, 8, dtype=torch.uint8), torch.tensor([1]), ["l0"])
    mixed = ImageSplit.concat([small, large])
    assert isinstance(mixed.images, RaggedImages)
    assert [tuple(i.shape) for i in mixed.images] == [(3, 4, 4), (3, 4, 4), (3, 8, 8)]
    assert int(mixed.images[2].sum()) == 3 * 64
    # One size stays one tensor, exactly torch.cat (the resized path as it always was).
    same = ImageSplit.concat([small, small])
    assert isinstance(same.images, torch.Tensor) and same.images.shape == (4, 3, 4, 4)


def test_a_native_entry_is_reused_and_kept_apart_from_the_resized_one(tmp_path, monkeypatch):
    mixed = _write(tmp_path / "mixed", {"FAKE": [(48, 48), (80, 60)], "REAL": [(48, 48), (20, 30)]})
    uniform = _write(tmp_path / "uniform", {"FAKE": [(48, 40)] * 2, "REAL": [(48, 40)] * 2})
    first = load_images(mixed, 16, native=True)
    images = first.splits["train"].images
    assert isinstance(images, RaggedImages)
    assert sorted(tuple(s) for s in images.shapes.tolist()) == [
        (30, 20),  # (h, w) of the 20×30 image
        (48, 48),
        (48, 48),
        (60, 80),
    ]
    assert (first.cache_path / "train.pixels.npy").is_file()
    one_size = load_images(uniform, 16, native=True).splits["train"].images
    assert isinstance(one_size, torch.Tensor) and one_size.shape == (4, 3, 40, 48)

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache should have been used")

    monkeypatch.setattr(decode, "decode_native_chunk", refuse)
    again = load_images(mixed, 16, native=True)
    assert again.cache_path == first.cache_path
    assert all(torch.equal(a, b) for a, b in zip(again.splits["train"].images, images, strict=True))
    resized = load_images(mixed, 16)  # the same files resized: another entry
    assert resized.cache_path != first.cache_path
    assert resized.splits["train"].images.shape == (4, 3, 16, 16)
    with pytest.raises(AssertionError, match="decoded although"):
        load_images(mixed, 16, native=True, native_max_side=64)  # another cap: another entry


def test_validation_batches_are_whole_native_images(tmp_path):
    images = [_pattern(20, 20, 0), _pattern(20, 20, 1), _pattern(30, 18, 2)]
    loader = make_loader(_split(images), 2, native_crop=16)  # no shuffle: validation, test
    batches = [x for x, _ in loader]
    assert isinstance(batches[0], torch.Tensor) and batches[0].shape == (2, 3, 20, 20)
    assert isinstance(batches[1], torch.Tensor) and torch.equal(batches[1][0], images[2])
    mixed = [x for x, _ in make_loader(_split(images), 3, native_crop=16)]
    assert isinstance(mixed[0], list) and [tuple(i.shape) for i in mixed[0]] == [
        (3, 20, 20), (3, 20, 20), (3, 30, 18)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tiles": 0}, r"field 'tiles': 0; expected a tile count >= 1 with data\.native=true"),
        (
            {"native_max_side": 12},
            r"'native_max_side': 12; expected an integer >= image_size \(16\)",
        ),
        ({"native_max_side": 0, "native": False}, r"'native_max_side': 0"),
        ({"native_max_gb": 0}, r"'native_max_gb': 0; expected a number of gigabytes > 0"),
        ({"native_max_gb": float("nan"), "native": False}, r"'native_max_gb': nan"),
        ({"augment": AugmentConfig()}, r"'augment\.crop_padding': 4; expected 0 with data\.native"),
    ],
)
def test_native_config_fields_are_checked(fields, message):
    base = {"image_size": 16, "native": True, "tiles": 4, "augment": AugmentConfig(crop_padding=0)}
    with pytest.raises(ConfigError, match=message) as caught:
        DataConfig(**{**base, **fields})
    assert str(caught.value).count(". ") == 0  # one sentence
    DataConfig(**base)  # and the base itself is fine


def test_the_shipped_faces_configs_carve_the_same_splits(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from realfake.train import compose

    for rel in ("cifake-sample/train.tar", "cifake-sample/test.tar", "faces-256/train.tar"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    monkeypatch.setenv("REALFAKE_DATA", str(tmp_path))
    faces = OmegaConf.to_object(compose(["data=faces_native"])).data
    alone = OmegaConf.to_object(compose(["data=faces_256"])).data
    assert (faces.native, faces.image_size, faces.tiles, faces.batch_size) == (True, 64, 16, 64)
    assert faces.augment.crop_padding == 0
    carving = ("source", "test_fraction", "val_fraction", "split_seed")
    assert [getattr(faces, k) for k in carving] == [getattr(alone, k) for k in carving]
    whole = OmegaConf.to_object(compose(["data=faces_64"])).data  # the same faces, resized whole
    assert (whole.native, whole.image_size, whole.tiles) == (False, 64, 0)
    assert [getattr(whole, k) for k in carving] == [getattr(alone, k) for k in carving]
    both = OmegaConf.to_object(compose(["data=cifake_faces_native"])).data
    assert (both.native, both.image_size, both.tiles, both.balance) == (
        True,
        32,
        16,
        "source_class",
    )
    assert both.extra_sources["faces"].source == alone.source
