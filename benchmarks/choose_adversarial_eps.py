"""Choose ε of `experiment=adversarial` on the validation split (never the test split).

    .venv/bin/python benchmarks/choose_adversarial_eps.py --runs-dir /tmp/adv-eps  # ~2 h, 1 thread
    .venv/bin/python benchmarks/choose_adversarial_eps.py --images 640 --epochs 1 --val-images 50 \\
        --no-update                                                         # smoke test, minutes

Trains `experiment=cifake_fast` plus `experiment=adversarial` at every ε of ``--eps`` (in 1/255,
2 PGD steps of α = ε/2 as the experiment takes at ε = 4), on the CIFAKE sample, one seed and
``--epochs``; finished runs named ``eps<ε>`` in ``--runs-dir`` are reused. Each run is scored on
a fixed subset of its own validation split (``--val-images``, drawn with seed 0: the same images
for every run, since all share ``data.split_seed``) clean and under 20-step PGD at ε = 1, 2, 4,
8/255, with the threshold frozen on clean validation data, and its scores are kept in
``<run>/eps-choice.json`` (the script resumes from them).

The rule, fixed before any candidate was scored: the ε with the highest mean of the five
accuracies (clean and the four attacks), ties within 0.005 going to the smaller ε, whose clean
cost is lower.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_adversarial import score_run, train_run
from common import SHARED, header, publish

HEADING = "## Adversarial training: ε chosen on the validation split (detection quality)"
ATTACKS = "pgd:1,pgd:2,pgd:4,pgd:8"
TIE = 0.005


def scores(run: Path, args: argparse.Namespace) -> dict[str, float]:
    """Accuracy per entry (clean first) of ``run`` on the validation subset, cached in the run."""
    cache = run / "eps-choice.json"
    key = {"val_images": args.val_images, "attacks": ATTACKS, "seed": args.seed}
    if cache.exists():
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            return kept["accuracy"]
    rows, seconds = score_run(run, args.val_images, ATTACKS, args.seed, split="val")
    accuracy = {row.perturbation: row.accuracy for row in rows}
    cache.write_text(json.dumps({"key": key, "accuracy": accuracy, "seconds": seconds}, indent=1))
    print(f"{run.name}: scored in {seconds / 60:.1f} min", flush=True)
    return accuracy


def choose(table: dict[float, dict[str, float]]) -> float:
    """The rule: highest mean accuracy; within ``TIE`` of the best, the smallest ε."""
    means = {eps: sum(acc.values()) / len(acc) for eps, acc in table.items()}
    best = max(means.values())
    return min(eps for eps, mean in means.items() if mean >= best - TIE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", default="2,4,8", help="candidate ε in 1/255 (2,4,8)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training (2)")
    parser.add_argument(
        "--images", type=int, default=0, help="training images per epoch (0: all 57,000)"
    )
    parser.add_argument(
        "--val-images", type=int, default=1000, help="validation subset, seed 0 (0: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--runs-dir", type=Path, required=True, help="runs are kept (and reused) here"
    )
    parser.add_argument("--no-update", action="store_true", help="print only")
    args = parser.parse_args()
    if not (SHARED / "train.tar").is_file():
        print(f"skipped: the CIFAKE sample is not at {SHARED} (set REALFAKE_DATA)")
        return 0
    candidates = [float(eps) for eps in args.eps.split(",")]
    table = {}
    for eps in candidates:
        overrides = [
            "experiment=adversarial",
            f"adversarial.eps={eps:g}",
            f"adversarial.alpha={eps / 2:g}",
        ]
        run = train_run(f"eps{eps:g}", overrides, args, args.runs_dir)
        table[eps] = scores(run, args)
    chosen = choose(table)
    entries = list(next(iter(table.values())))
    lines = [
        *header(),
        "- Runs: `experiment=cifake_fast` + `experiment=adversarial` (PGD, 2 steps of α = ε/2 "
        f"from a random start), {args.epochs} epoch(s)"
        + (f" of {args.images:,} images" if args.images else "")
        + f", seed {args.seed}.",
        f"- Scored on {f'{args.val_images:,}' if args.val_images else 'all'} images of the "
        "validation split (a fixed random subset, seed 0), clean and under 20-step PGD; threshold "
        "frozen on clean validation data; each run's scores kept in its `eps-choice.json`.",
        f"- Rule (fixed before scoring): highest mean of the {len(entries)} accuracies; within "
        f"{TIE} of the best, the smallest ε. **Chosen: ε = {chosen:g}/255.**",
        "",
        "| trained at ε /255 | " + " | ".join(f"`{e}`" for e in entries) + " | mean |",
        "| ---: | " + " | ".join("---:" for _ in entries) + " | ---: |",
    ]
    for eps, acc in table.items():
        mean = sum(acc.values()) / len(acc)
        mark = " (chosen)" if eps == chosen else ""
        cells = " | ".join(f"{acc[e]:.3f}" for e in entries)
        lines.append(f"| {eps:g}{mark} | {cells} | {mean:.3f} |")
    publish(HEADING, lines, update=not args.no_update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
