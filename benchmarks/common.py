"""Shared pieces of the benchmark scripts: machine description, timing, BENCHMARKS.md sections."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
# The folder of data sets: $REALFAKE_DATA when set (README, "Data"), else ../shared/data beside
# the project, where this machine keeps the CIFAKE sample.
DATA = Path(os.environ.get("REALFAKE_DATA") or ROOT.parent / "shared" / "data")
SHARED = DATA / "cifake-sample"


def cifake_sample_paths() -> list[str]:
    """The CIFAKE sample in ``SHARED`` as overrides: ``data=cifake_sample`` then needs no
    REALFAKE_DATA."""
    return [f"data.source={SHARED / 'train.tar'}", f"data.test_source={SHARED / 'test.tar'}"]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1) if found else platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the CPU, the logical CPU count and the main library versions."""
    import torch

    return (
        f"{cpu_model()}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def header(command: str | None = None) -> list[str]:
    """The machine / date / command lines every section starts with."""
    script = Path(sys.argv[0]).resolve().relative_to(ROOT)
    cmd = command or f".venv/bin/python {script} {shlex.join(sys.argv[1:])}"
    return [
        f"- Machine: {machine()}",
        f"- Date: {datetime.date.today().isoformat()}; load average (1/5/15 min) at the end: "
        f"{load_average()}",
        f"- Command: `{cmd.strip()}`",
    ]


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def publish(heading: str, lines: list[str], update: bool) -> None:
    """Print a benchmark's section and, when ``update``, write it into BENCHMARKS.md."""
    body = "\n".join(lines)
    print(body)
    if update:
        update_section(heading, body)


def update_section(heading: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the section under ``heading`` (up to the next ``## ``) in ``path``, or append it."""
    section = f"{heading}\n\n{body.strip()}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
