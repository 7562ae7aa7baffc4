"""Time building the decoded-image cache for CIFAKE's train.tar (60,000 JPEGs) and loading it.

Usage: ``.venv/bin/python benchmarks/bench_data.py [--tar PATH] [--loads N]``. Reads the shared
CIFAKE sample (``$REALFAKE_DATA/cifake-sample/train.tar``, by default ``../shared/data`` next to
the project) and skips cleanly when it is absent. Every run builds into a fresh temporary cache
folder.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED

DEFAULT_TAR = SHARED / "train.tar"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tar", type=Path, default=DEFAULT_TAR)
    parser.add_argument("--loads", type=int, default=5, help="cache loads to take the median of")
    args = parser.parse_args()
    if not args.tar.is_file():
        print(f"skipped: {args.tar} not found (the shared CIFAKE sample is not on this machine)")
        return 0

    from realfake.data.batches import make_loader
    from realfake.data.build import available_cpus
    from realfake.data.loader import load_images

    print(f"machine: {cpu_model()}, {available_cpus()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="realfake-bench-") as cache:
        start = time.perf_counter()
        data = load_images(args.tar, 32, cache_dir=cache)
        build = time.perf_counter() - start
        n = sum(len(s) for s in data.splits.values())
        print(f"build cache: {n:,} images in {build:.2f} s ({n / build:,.0f} images/s)")

        loads = []
        for _ in range(args.loads):
            start = time.perf_counter()
            again = load_images(args.tar, 32, cache_dir=cache)
            loads.append(time.perf_counter() - start)
        print(
            f"load cache: median {statistics.median(loads) * 1000:.1f} ms over {args.loads} loads"
        )

        # One pass over every image, as a training epoch reads them (shuffled, batches of 128).
        split = again.splits["train"]
        loader = make_loader(split, 128, shuffle_seed=0)
        start = time.perf_counter()
        total = sum(int(images.shape[0]) for images, _ in loader)
        epoch = time.perf_counter() - start
        print(f"one shuffled epoch of uint8 batches: {total:,} images in {epoch:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
