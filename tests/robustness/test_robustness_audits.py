"""Shortcut probes on a tiny run; leak audit on planted exact and near duplicates."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from robustness_samples import copy_tree, embedded_images

from realfake.cli import main
from realfake.data.cifar10 import CIFAR10_CLASSES
from realfake.robustness.leaks import audit_leaks, near_pairs, popcount
from realfake.robustness.shortcuts import audit_shortcuts


@pytest.mark.slow
def test_shortcut_probes(tiny_run: Path, evaluated) -> None:
    import torchvision.transforms.v2.functional as TF

    from realfake.data.perturbations import jpeg
    from realfake.inference import Scorer
    from realfake.inference.splits import run_splits

    audit = audit_shortcuts(tiny_run, jpeg_qualities=(75, 30), sizes=(24,))
    # The clean probe is evaluate's decision on the same images.
    assert audit.clean_accuracy == evaluated.metrics["accuracy"]
    assert audit.threshold == evaluated.record["threshold"]
    scorer = Scorer.open(tiny_run)
    test = run_splits(scorer.predictor).test
    labels = test.labels.numpy()
    clean = scorer.decide(scorer.probabilities(test.images))

    def expected(images, resize=True):
        predicted = scorer.decide(scorer.probabilities(images, resize=resize))
        return float(np.mean(predicted == labels)), float(np.mean(predicted != clean))

    assert [p.quality for p in audit.jpeg] == [75, 30]
    # The probe is exactly the re-encoded images' decisions.
    assert (audit.jpeg[1].accuracy, audit.jpeg[1].changed) == expected(jpeg(test.images, 30))
    # CIFAKE's files are quality 75: re-encoding them at 75 changes fewer decisions than at 30.
    assert audit.jpeg[0].changed <= audit.jpeg[1].changed and audit.jpeg[1].changed > 0
    assert [s.size for s in audit.sizes] == [24]
    for row in audit.sizes:  # fed at that size itself (fastnet pools globally)
        resized = TF.resize(test.images, [row.size, row.size], antialias=True)
        assert (row.accuracy, row.changed) == expected(resized, resize=False)
        assert row.changed > 0
    assert audit.unparsed == 0
    assert {r.cifar10_class for r in audit.per_class} == set(CIFAR10_CLASSES)
    assert sum(r.n for r in audit.per_class) == 200
    assert {r.label for r in audit.per_class} == {"FAKE", "REAL"}
    hits = sum(r.n * r.accuracy for r in audit.per_class)
    assert hits == pytest.approx(200 * audit.clean_accuracy)  # the classes partition the test


def _brightened_copy(path: Path, target: Path) -> None:
    with Image.open(path) as im:
        ImageEnhance.Brightness(im.convert("RGB")).enhance(1.1).save(target, "JPEG", quality=90)


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """train/ and test/ with one exact copy, one brightened re-encoded copy, three unrelated."""
    fake, real = embedded_images("train", "FAKE", 4), embedded_images("train", "REAL", 4)
    files = {f"train/FAKE/{p.name}": p for p in fake} | {f"train/REAL/{p.name}": p for p in real}
    files["test/FAKE/copy.jpg"] = fake[0]
    files |= {f"test/FAKE/{p.name}": p for p in embedded_images("test", "FAKE", 2)}
    files |= {f"test/REAL/{p.name}": p for p in embedded_images("test", "REAL", 1)}
    root = copy_tree(files, tmp_path / "leaky")
    _brightened_copy(real[0], root / "test" / "REAL" / "edited.jpg")
    return root


def test_leak_audit_finds_planted_duplicates_only(leaky: Path) -> None:
    report = audit_leaks(leaky)
    assert (report.n_train, report.n_test) == (8, 5)
    assert report.exact_groups == 1 and report.exact_test_images == 1
    assert report.exact_groups_hash_zero == 1
    assert sorted(report.leaked_names) == ["test/FAKE/copy.jpg", "test/REAL/edited.jpg"]
    assert report.near_test_images == 1
    near = [p for p in report.pairs if not p.exact]
    assert [(p.test, p.train.rsplit("/", 1)[-1]) for p in near] == [
        ("test/REAL/edited.jpg", embedded_images("train", "REAL", 1)[0].name)
    ]
    assert near[0].distance <= 4 and 0 < near[0].pixel_mae < 40
    assert audit_leaks(leaky, max_distance=0).near_test_images <= 1


def test_leak_cli_with_two_sources_and_checkpoint(
    leaky: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = tmp_path / "train_only", tmp_path / "test_only"
    shutil.copytree(leaky / "train", train)
    shutil.copytree(leaky / "test", test)
    out = tmp_path / "pairs.csv"
    args = ["audit", "leaks", str(train), str(test), "--out", str(out)]
    assert main([*args, "--checkpoint", str(tiny_run)]) == 0
    text = capsys.readouterr().out
    assert "test images leaking in all" in text and "without leaks (3)" in text
    rows = list(csv.DictReader(out.open()))
    assert {(r["test"], r["exact"]) for r in rows} == {("FAKE/copy.jpg", "True"),
                                                        ("REAL/edited.jpg", "False")}  # fmt: skip


def test_hamming_search_is_exact() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    flips = [np.uint64(0), np.uint64(0b101), np.uint64(0b1111100000)]
    query = np.concatenate([reference[[7, 8, 9]] ^ np.array(flips), rng.integers(0, 2**63, 40,
                            dtype=np.int64).astype(np.uint64)])  # fmt: skip
    q, r, d = near_pairs(query, reference, 4, block=7)
    assert list(zip(q.tolist(), r.tolist(), d.tolist(), strict=True)) == [(0, 7, 0), (1, 8, 2)]
    assert popcount(np.array([2**64 - 1, 0, 6], np.uint64)).tolist() == [64, 0, 2]
