"""Training and inference throughput of realfake's models next to torchvision's identical ones.

Each pair has the same layers and, after loading torchvision's state dict into ours, the same
weights; both run on the same input, with the same thread count, alternating batch by batch so
that load from other processes hits both alike. Reports medians and the ratio ours/torchvision.

    python benchmarks/bench_models.py --update BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from common import update_section
from torch import nn
from torchvision import models as tv

from realfake.models import build_model
from realfake.models.torchvision_compat import from_torchvision_state_dict

HEADING = "## Model zoo: ours vs torchvision"

# name → (torchvision builder, options that give our model torchvision's layout); None: no twin.
CASES: dict[str, tuple[Callable[..., nn.Module] | None, dict]] = {
    "resnet18": (tv.resnet18, {"stem": "imagenet"}),
    # torchvision's VGG head has two Dropout(0.5) layers; ours gets them through `dropout`.
    "vgg16": (tv.vgg16_bn, {"stem": "imagenet", "dropout": 0.5}),
    "resnext29_2x64d": (None, {}),
}


@dataclass
class Throughput:
    train: list[float]
    infer: list[float]


def make_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, train: bool):
    """One timed unit of work: an SGD step on the batch, or a forward pass without autograd."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train_step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    def infer_step() -> None:
        model.eval()
        with torch.inference_mode():
            model(images)

    return train_step if train else infer_step


def seconds_for(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def measure(
    models: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, args
) -> dict[str, Throughput]:
    """Images/s per model and batch, the models alternating batch by batch (ABBA order)."""
    results = {label: Throughput([], []) for label in models}
    for train in (True, False):
        steps = {label: make_step(m, images, labels, train) for label, m in models.items()}
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        order = list(steps)
        start, rounds = time.perf_counter(), 0
        while rounds < args.min_rounds or time.perf_counter() - start < args.seconds:
            for label in order if rounds % 2 == 0 else reversed(order):
                rate = images.shape[0] / seconds_for(steps[label])
                (results[label].train if train else results[label].infer).append(rate)
            rounds += 1
    return results


def paired_ratio(ours: list[float], reference: list[float]) -> float:
    """Median over rounds of ours/reference, each ratio from two batches adjacent in time."""
    return statistics.median(a / b for a, b in zip(ours, reference, strict=True))


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    cpu = found.group(1) if found else platform.processor() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} logical CPUs"


def report(
    results: dict[tuple[int, str], dict[str, Throughput]],
    args,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    median = statistics.median
    before, after = (" ".join(f"{x:.2f}" for x in averages) for averages in load)
    lines = [
        HEADING,
        "",
        f"- Machine: {machine()}; torch threads: {', '.join(map(str, args.threads))} (column)",
        f"- torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"Python {platform.python_version()}",
        f"- Date: {datetime.date.today().isoformat()}; load average before/after: "
        f"{before} / {after}",
        f"- Command: `python benchmarks/bench_models.py {shlex.join(sys.argv[1:])}`",
        f"- Input: {args.batch}×3×{args.image_size}×{args.image_size} float32, 2 classes;"
        " training = forward + cross-entropy backward + SGD-momentum step;"
        " inference = eval forward under `torch.inference_mode()`. Each figure is a median over"
        f" timed batches ({args.warmup} warm-up batches, then at least {args.min_rounds} rounds and"
        f" {args.seconds:g} s per model and mode); ours and torchvision alternate batch by batch"
        " and a ratio is the median over rounds of ours/torchvision, so that bursts of load from"
        " other processes hit both alike.",
        "- Pairs have identical layers and weights (torchvision's state dict is loaded into ours):"
        ' our `resnet18`/`vgg16` with `stem="imagenet"` (7×7 stem + max-pool; 7×7 pool +'
        " 4096-4096 head with dropout 0.5) against `torchvision.models.resnet18` / `vgg16_bn`.",
        "- `resnext29_2x64d` (3×3 CIFAR stem, the seed's network) has no torchvision counterpart:"
        " its throughput is reported alone.",
        "",
        "| model | threads | train img/s ours | train img/s torchvision | ratio | "
        "infer img/s ours | infer img/s torchvision | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (threads, name), by_impl in results.items():
        ours = by_impl["ours"]
        row = [name, str(threads), f"{median(ours.train):.1f}"]
        reference = by_impl.get("torchvision")
        if reference is None:
            row += ["—", "—", f"{median(ours.infer):.1f}", "—", "—"]
        else:
            row += [
                f"{median(reference.train):.1f}",
                f"{paired_ratio(ours.train, reference.train):.3f}",
                f"{median(ours.infer):.1f}",
                f"{median(reference.infer):.1f}",
                f"{paired_ratio(ours.infer, reference.infer):.3f}",
            ]
        lines.append("| " + " | ".join(row) + " |")
    peak = max(load[0][0], load[1][0])
    if peak > (os.cpu_count() or 1):
        lines += [
            "",
            f"Warning: the 1-minute load average reached {peak:.1f} on {os.cpu_count()} CPUs, so"
            " other processes competed for the cores. Absolute figures are low and vary, and"
            " runs with several threads suffer most (every parallel region waits for a thread"
            " the scheduler has parked); the ratios from one thread are the trustworthy ones.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per model and mode")
    parser.add_argument(
        "--min-rounds", type=int, default=7, help="timed batches per model, at least"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="keep timing rounds for at least this long"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[os.cpu_count()], help="torch thread counts"
    )
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--update", type=Path, help="write the section into this markdown file")
    args = parser.parse_args()

    load_before = os.getloadavg()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=generator)
    labels = torch.randint(0, 2, (args.batch,), generator=generator)
    results = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.models:
            builder, options = CASES[name]
            torch.manual_seed(0)
            models = {"ours": build_model(name, 2, image_size=args.image_size, **options)}
            if builder is not None:
                reference = builder(weights=None, num_classes=2)
                converted = from_torchvision_state_dict(name, reference.state_dict())
                models["ours"].load_state_dict(converted)  # strict: proves the layers are the same
                models["torchvision"] = reference
            results[threads, name] = measure(models, images, labels, args)
            print(f"{name} on {threads} threads: done", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    section = report(results, args, (load_before, load_after))
    print(section)
    if args.update:
        # The section starts with its heading; the shared writer adds the heading itself.
        update_section(HEADING, section.split("\n", 1)[1], args.update)


if __name__ == "__main__":
    main()
