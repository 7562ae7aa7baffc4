"""UNSURE verdicts measured: coverage and the accuracy of answers in and out of the training
source, and how well the feature-distance score tells unfamiliar images from familiar ones.

    .venv/bin/python benchmarks/bench_unsure.py --runs-dir /tmp/unsure      # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_unsure.py --epochs 1 --images 500 --no-update   # smoke

Trains `experiment=cifake_fast` on the CIFAKE sample for ``--epochs`` (a finished run named
``unsure-cifake`` in ``--runs-dir`` is reused), then freezes its decision rule with
`realfake evaluate --freeze-threshold accuracy` (threshold, UNSURE band and feature-distance
reference, all from the run's own training and validation splits; refitted on every run of
this script, so the reference is always the current code's). Scored, never tuned on:
- CIFAKE's test split (a fixed subset of ``--images``, seed 0): the source it was trained on;
- faces-256 (``$REALFAKE_DATA/faces-256/train.tar``, a fixed subset of ``--images``): another
  generator, another subject, another size, resized to the model's 32 px as `predict` does;
- synthetic pictures that are neither photographs nor generated photographs (flat colours,
  gradients, noise, text on white like a screenshot, line drawings), 60 of each kind.
The out-of-distribution ROC-AUC ranks images by the feature-distance score (the most unusual
layer's standardised distance): CIFAKE test images are the negatives, each other set the
positives; a second table gives each layer's own ROC-AUC.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from common import DATA, cifake_sample_paths, header, publish

HEADING = "## UNSURE verdicts: coverage, accuracy of answers, unfamiliar images"


def train_run(runs_dir: Path, epochs: int) -> Path:
    from realfake.runs import RunDir, read_json
    from realfake.train import compose, train

    run = runs_dir / "unsure-cifake"
    if read_json(RunDir(run).manifest).get("status") == "finished":
        print(f"reusing {run}", flush=True)
        return run
    overrides = [
        "data=cifake_sample",
        *cifake_sample_paths(),
        "experiment=cifake_fast",
        f"trainer.max_epochs={epochs}",
        "logging=offline",
        f"runs_dir={runs_dir}",
        "name=unsure-cifake",
    ]
    return train(compose(overrides)).run_dir


def subset(n_total: int, n: int) -> torch.Tensor:
    pick = torch.randperm(n_total, generator=torch.Generator().manual_seed(0))[:n]
    return pick.sort().values


def synthetic(n_per_kind: int, size: int = 256) -> torch.Tensor:
    """Pictures no photo detector was trained on, at a photo's size: uint8 N×3×S×S."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    pictures = []
    for k in range(n_per_kind):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        pictures.append(Image.new("RGB", (size, size), colour))
        ramp = np.linspace(0, 255, size, dtype=np.float64)
        a, b = rng.uniform(0.2, 1.0, 2)
        grad = np.stack([np.add.outer(ramp * a, ramp * b) / 2] * 3, -1) % 256
        pictures.append(Image.fromarray(grad.astype(np.uint8)))
        pictures.append(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
        page = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(page)
        for line in range(12):
            words = " ".join(["lorem", "ipsum", "dolor", "sit", "amet"][: 2 + (k + line) % 4])
            draw.text((8, 6 + 20 * line), words, fill=(20, 20, 20))
        pictures.append(page)
        drawing = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(drawing)
        for _ in range(8):
            x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, 4))
            draw.line((x0, y0, x1, y1), fill=(0, 0, 0), width=3)
        pictures.append(drawing)
    arrays = [np.asarray(p.convert("RGB")).transpose(2, 0, 1) for p in pictures]
    return torch.from_numpy(np.stack(arrays).copy())


def roc_auc(inside: np.ndarray, outside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(labels, np.r_[inside, outside]))


def _fmt(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"  # NaN: a set without labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/realfake-unsure"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=2000, help="per scored set (2000)")
    parser.add_argument("--no-update", action="store_true", help="print only")
    args = parser.parse_args()
    faces = DATA / "faces-256" / "train.tar"
    if not (DATA / "cifake-sample" / "train.tar").exists() or not faces.exists():
        print(f"skipped: the CIFAKE sample or faces-256 is not under {DATA}")
        return 0
    from realfake.data.loader import load_images
    from realfake.evaluate.evaluation import evaluate
    from realfake.inference import Scorer
    from realfake.inference.splits import eval_images
    from realfake.inference.verdict import UNSURE

    run = train_run(args.runs_dir, args.epochs)
    frozen = evaluate(run, freeze="accuracy", n_resamples=0, figures=False)
    print(frozen.freeze.why if frozen.freeze else "", flush=True)
    scorer = Scorer.open(run)
    rows, distances, layers, decided_by, labels_by = [], {}, {}, {}, {}

    def score(
        name: str, images: torch.Tensor, labels: np.ndarray | None, sizes: np.ndarray
    ) -> None:
        scored = scorer.score(images, sizes=sizes)
        said = scorer.verdicts(scored.probs, scored.distances, sizes)
        answered = np.array([v != UNSURE for v, _ in said])
        by_size = sum("far from their size" in r for v, r in said if v == UNSURE)
        by_features = sum("its features are further" in r for v, r in said if v == UNSURE)
        decided = scorer.decide(scored.probs)
        acc = sel = float("nan")
        if labels is not None:
            acc = float((decided == labels).mean())
            sel = float((decided[answered] == labels[answered]).mean()) if answered.any() else sel
        assert scorer.ood is not None and scored.distances is not None
        distances[name] = scorer.ood.score(scored.distances)
        layers[name] = scored.distances
        decided_by[name], labels_by[name] = decided, labels
        rows.append((name, len(images), acc, float(answered.mean()), sel, by_size, by_features))
        print(rows[-1], flush=True)

    test = eval_images(scorer.predictor, None, "test").split
    pick = subset(len(test), args.images)
    p = pick.numpy()
    score("CIFAKE test (trained on)", test.images[pick], test.labels.numpy()[p], test.sizes[p])
    other = load_images(faces, scorer.image_size, scorer.spec.resize, classes=scorer.classes)
    split = other.splits["train"]
    pick = subset(len(split), args.images)
    p = pick.numpy()
    score("faces-256 (held out)", split.images[pick], split.labels.numpy()[p], split.sizes[p])
    # The faces brought to 32 px before the model sees them: only the features can tell.
    small = (
        torch.nn.functional.interpolate(split.images[pick].float(), size=32, mode="area")
        .round()
        .to(torch.uint8)
    )
    sizes32 = np.full((len(pick), 2), 32)
    score("faces-256 shrunk to 32 px (held out)", small, split.labels.numpy()[p], sizes32)
    odd = synthetic(60)
    score("synthetic at 256 px: flat, gradient, noise, text, drawing", odd, None,
          np.full((len(odd), 2), 256))  # fmt: skip
    odd32 = synthetic(60, size=32)
    score("the same synthetic kinds at 32 px", odd32, None, np.full((len(odd32), 2), 32))

    inside = distances["CIFAKE test (trained on)"]
    band = frozen.record["unsure"]["band"]
    band_text = "none" if band is None else f"±{band['margin']:.4f} around the threshold"
    rule = frozen.record["decision"]["text"]
    fitted = frozen.record["unsure"]["feature_distance"]["fitted_on"]
    lines = [
        *header(),
        f"- Run: `experiment=cifake_fast`, {args.epochs} epochs on the CIFAKE sample; rule frozen "
        f"by `realfake evaluate --freeze-threshold accuracy`: {rule}",
        f"- UNSURE band: {band_text}; feature distance: {fitted}; training sizes: "
        f"{frozen.record['unsure']['training_sizes']}",
        "",
        "| images | n | accuracy (all) | answered (coverage) | accuracy of answers | "
        "UNSURE: size | UNSURE: features | feature-distance ROC-AUC vs CIFAKE test |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, n, acc, coverage, sel, by_size, by_features in rows:
        auc = "–" if name.startswith("CIFAKE") else f"{roc_auc(inside, distances[name]):.3f}"
        lines.append(
            f"| {name} | {n:,} | {_fmt(acc)} | {coverage:.1%} | {_fmt(sel)} | {by_size:,} | "
            f"{by_features:,} | {auc} |"
        )
    lines += [
        "",
        "Reading: *accuracy of answers* counts only the images not called UNSURE (– when none "
        "was answered or the set has no labels); *coverage* is the share that got an answer. "
        "*UNSURE: size* are images far from the training images' size (here anything but about "
        "32 px); *UNSURE: features* are beyond the 99th percentile of validation images' "
        "feature-distance score (per layer, the log Mahalanobis distance to the nearest class "
        "mean in units of the validation images'; the most unusual layer's counts). The ROC-AUC "
        "column ranks by that score alone, so it says how well the features tell these images "
        "from CIFAKE's at the same input size.",
    ]
    assert scorer.ood is not None
    names = [name for name in layers if not name.startswith("CIFAKE")]
    lines += [
        "",
        "Each layer's own ROC-AUC against CIFAKE test (its standardised distance alone):",
        "",
        "| images | " + " | ".join(scorer.ood.layers) + " |",
        "| --- |" + " ---: |" * len(scorer.ood.layers),
    ]
    inside_layers = layers["CIFAKE test (trained on)"]
    for name in names:
        aucs = [
            roc_auc(inside_layers[:, k], layers[name][:, k]) for k in range(len(scorer.ood.layers))
        ]
        lines.append(f"| {name} | " + " | ".join(f"{a:.3f}" for a in aucs) + " |")
    # Stricter cut-offs, each the q-quantile of the validation images' own scores (chosen on
    # validation, as the frozen rule's 99th percentile): what answering less buys on faces.
    val = eval_images(scorer.predictor, None, "val").split
    val_scores = scorer.ood.score(scorer.score(val.images, sizes=val.sizes).distances)
    shown = ["CIFAKE test (trained on)", "faces-256 shrunk to 32 px (held out)"]
    lines += [
        "",
        "Stricter cut-offs for the feature check (the q-quantile of the run's validation "
        f"images' scores, {len(val_scores):,} images; on these two 32-px sets only the feature "
        "check decides; coverage / accuracy of answers):",
        "",
        "| cut-off at validation quantile | " + " | ".join(shown) + " |",
        "| ---: |" + " ---: |" * len(shown),
    ]
    for q in (0.99, 0.95, 0.90, 0.80, 0.50):
        cut = float(np.quantile(val_scores, q))
        cells = []
        for name in shown:
            answered = distances[name] <= cut
            right = decided_by[name][answered] == labels_by[name][answered]
            sel = float(right.mean()) if answered.any() else float("nan")
            cells.append(f"{answered.mean():.1%} / {_fmt(sel)}")
        lines.append(f"| {q:.2f} | " + " | ".join(cells) + " |")
    publish(HEADING, lines, not args.no_update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
