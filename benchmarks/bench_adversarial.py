"""Adversarial robustness: clean training against PGD adversarial training on the CIFAKE sample.

    .venv/bin/python benchmarks/bench_adversarial.py --epochs 2         # ~2 h on 2 shared CPU cores
    .venv/bin/python benchmarks/bench_adversarial.py --images 2000 --epochs 1 --test-images 200 \\
        --no-update                                                         # smoke test, minutes

Trains two runs of ``experiment=cifake_fast`` for ``--epochs`` on the CIFAKE sample (the same
seed, data and schedule), one clean and one with ``experiment=adversarial`` (PGD adversarial
training, Madry et al. 2018: 2 steps of α = 2/255 at ε = 4/255), or takes existing runs
(``--clean RUN --adversarial RUN``). Each is then scored on a fixed random subset of the official
test split (``--test-images``, default 2,000 drawn with seed 0; 0 = all 20,000) clean and under
every white-box attack of the robustness grid: ``fgsm:EPS`` (one step of ε) and ``pgd:EPS`` (20
steps of α = 2.5·ε/20 from a random start), ε = 1, 2, 4, 8 /255, against the run's own function
(normalisation and flip TTA), attacked images rounded to uint8, decided with the threshold frozen
on clean validation data (``realfake robustness``'s rules). PGD with flip TTA costs 40
forward and backward passes per image: the full test split would take 10 times the subset's hours.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import SHARED, cifake_sample_paths, header, load_average, publish

HEADING = "## Adversarial robustness: clean against adversarial training (detection quality)"
ATTACKS = "fgsm:1,fgsm:2,fgsm:4,fgsm:8,pgd:1,pgd:2,pgd:4,pgd:8"


def train_run(name: str, extra: list[str], args: argparse.Namespace, runs_dir: Path) -> Path:
    """Train one arm (or reuse it when ``runs_dir`` already holds it finished)."""
    from realfake.runs import RunDir, read_json
    from realfake.train import compose, train

    run = runs_dir / name
    manifest = read_json(RunDir(run).manifest) if run.exists() else None
    if manifest and manifest.get("status") == "finished":
        print(f"{name}: reusing {run}", flush=True)
        return run
    overrides = [
        "data=cifake_sample",
        *cifake_sample_paths(),
        "experiment=cifake_fast",
        *extra,
        f"trainer.max_epochs={args.epochs}",
        f"seed={args.seed}",
        "logging=offline",
        f"runs_dir={runs_dir}",
        f"name={name}",
        "evaluate_test=false",  # scored below, on the same test images as the attacks
    ]
    if args.images:
        overrides.append(f"trainer.limit_train_batches={max(1, args.images // 64)}")
    started = time.perf_counter()
    train(compose(overrides))
    print(f"{name}: trained in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return run


def score_run(
    run: Path, images: int, attacks: str, seed: int, split: str = "test"
) -> tuple[list, float]:
    """Robustness rows (clean first) of ``run`` on a fixed subset of ``images`` of its ``split``
    (all of it when 0), and the seconds they took."""
    from realfake.attacks.whitebox import attack_images
    from realfake.evaluate.evaluation import freeze_on_validation
    from realfake.inference import Scorer
    from realfake.inference.splits import eval_images
    from realfake.robustness.grid import evaluate_grid, parse_entries
    from realfake.runs.spec import MIN_PER_CLASS

    # Decided as recorded: a threshold frozen on the run's clean validation split (thousands of
    # images per class here, so the support rule admits it; `evaluate --freeze-threshold`).
    scorer, _ = freeze_on_validation(
        Scorer.open(run, threshold="argmax"), "accuracy", MIN_PER_CLASS
    )
    scored = eval_images(scorer.predictor, None, split)
    pixels, labels = scored.split.images, scored.split.labels.numpy()
    if images and images < len(labels):
        # A fixed subset, the same for every run: seed 0, sorted to keep the split's order.
        pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        pick = pick[:images].sort().values
        pixels, labels = pixels[pick], labels[pick.numpy()]
    started = time.perf_counter()
    rows = evaluate_grid(
        scorer.probabilities,
        pixels,
        labels,
        scorer.classes,
        parse_entries(attacks),
        scorer.rule.threshold,
        seed,
        scorer.positive,
        attacker=lambda attack, batch, y, s: attack_images(scorer, batch, y, attack, seed=s),
    )
    return rows, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training (2)")
    parser.add_argument(
        "--images", type=int, default=0, help="training images per epoch (0: all 57,000)"
    )
    parser.add_argument(
        "--test-images", type=int, default=2000, help="test subset, seed 0 (0: all 20,000)"
    )
    parser.add_argument("--eps", type=float, default=None, help="adversarial.eps of the arm")
    parser.add_argument("--attacks", default=ATTACKS, help=f"grid entries ({ATTACKS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", type=Path, default=None, help="an existing clean run")
    parser.add_argument("--adversarial", type=Path, default=None, help="an existing run")
    parser.add_argument(
        "--runs-dir",
        default=None,
        help="keep the runs here (default: a temporary folder); finished runs in it are reused",
    )
    parser.add_argument("--no-update", action="store_true", help="print only")
    args = parser.parse_args()
    if (args.clean is None or args.adversarial is None) and not (SHARED / "train.tar").is_file():
        print(f"skipped: the CIFAKE sample is not at {SHARED} (set REALFAKE_DATA)")
        return 0
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="realfake-adversarial-"))
    eps = [f"adversarial.eps={args.eps:g}"] if args.eps is not None else []
    arms = {
        "clean training": args.clean or train_run("clean", [], args, runs_dir),
        "adversarial training": args.adversarial
        or train_run("adversarial", ["experiment=adversarial", *eps], args, runs_dir),
    }
    results = {}
    for arm, run in arms.items():
        rows, seconds = score_run(run, args.test_images, args.attacks, args.seed)
        results[arm] = rows
        print(f"{arm}: {run}, scored in {seconds / 60:.1f} min", flush=True)

    from realfake.attacks import linf
    from realfake.train import config as C

    adv = C.load_file(Path(arms["adversarial training"]) / "config.yaml").adversarial
    trained_on = linf.make_attack(adv.attack, adv.eps, adv.steps, adv.alpha)  # as the run built it
    first = next(iter(results.values()))
    n = first[0].n
    lines = [
        *header(),
        f"- Runs: `experiment=cifake_fast`, {args.epochs} epoch(s)"
        + (f" of {args.images:,} images" if args.images else "")
        + f", seed {args.seed}; adversarial arm: `experiment=adversarial` "
        f"(trained on {trained_on.describe()}).",
        f"- Test: {n:,} images of the official test split"
        + (" (a fixed random subset, seed 0)" if args.test_images else "")
        + "; white-box attacks on each run's own function (flip TTA), threshold frozen on "
        f"clean validation data; fgsm = {linf.ATTACKS['fgsm'].defaults}, pgd = "
        f"{linf.ATTACKS['pgd'].defaults}; attacked images rounded to uint8.",
        f"- Load average at the end: {load_average()}",
        "",
        "| entry | " + " | ".join(f"{arm}: accuracy | ROC-AUC" for arm in results) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in results) + " |",
    ]
    for i, row in enumerate(first):
        cells = [f"{rows[i].accuracy:.3f} | {rows[i].roc_auc:.3f}" for rows in results.values()]
        lines.append(f"| `{row.perturbation}` | " + " | ".join(cells) + " |")
    publish(HEADING, lines, update=not args.no_update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
