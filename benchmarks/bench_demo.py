"""The `make demo` recipe over several seeds: wall time and test accuracy (issue 5).

python benchmarks/bench_demo.py --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from common import header, update_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-update", action="store_true")
    args = parser.parse_args()

    from realfake.train import compose, train

    rows = []
    with tempfile.TemporaryDirectory(prefix="realfake-demo-") as runs:
        for seed in range(args.seeds):
            start = time.perf_counter()
            result = train(
                compose(
                    [
                        "experiment=demo",
                        f"seed={seed}",
                        "trainer.deterministic=true",
                        "logging.mlflow=false",
                        "logging.progress=none",
                        f"runs_dir={runs}",
                    ]
                )
            )
            wall = time.perf_counter() - start
            m = result.metrics
            rows.append((seed, wall, m["train_time_s"], m["images_per_s"], m["test_acc"]))
            print(f"seed {seed}: {wall:.0f} s, test acc {m['test_acc']:.4f}")
    accs = [r[4] for r in rows]
    lines = [
        *header(),
        "- Recipe: `experiment=demo` (what `make demo` runs): `fastnet` (width 32), SGD Nesterov "
        "lr 0.05, one-cycle, label smoothing 0.1, flip + pad-4 crop, batch 32, 15 epochs on the "
        "900 embedded training images (100 for validation), tested on the 200 embedded test "
        "images with flip TTA; `trainer.deterministic=true`. Wall time includes data loading "
        "and testing, not Python start-up (about 5 s more for `make demo`).",
        "",
        "| seed | wall time | training time | train images/s | test accuracy |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *(f"| {s} | {w:.0f} s | {t:.0f} s | {r:.0f} | {a:.1%} |" for s, w, t, r, a in rows),
        "",
        f"Test accuracy mean ± std over {len(rows)} seeds: "
        f"**{statistics.mean(accs):.1%} ± {statistics.stdev(accs) if len(accs) > 1 else 0:.1%}** "
        "(chance: 50%). Budget: ≤ 3 minutes on 2 cores.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_update:
        update_section("## Demo: `make demo` on the embedded data", body)


if __name__ == "__main__":
    main()
