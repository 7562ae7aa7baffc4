"""Speed benchmarks (issue 7): data path vs the seeds' pipeline, training settings, peak, inference.

    python benchmarks/bench_speed.py datapath     # needs $REALFAKE_DATA/cifake-sample/train.tar
    python benchmarks/bench_speed.py train        # per model: fp32 / bf16 / channels_last / compile
    python benchmarks/bench_speed.py peak         # achieved training FLOP/s over matmul peak
    python benchmarks/bench_speed.py inference    # images/s at batch 1 and 256
    python benchmarks/bench_speed.py profile --batch 128 --steps 10   # where a step's time goes

Each part prints its table and rewrites its own section of BENCHMARKS.md (``--no-update`` not to).
"""

from __future__ import annotations

import argparse
import statistics
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from common import SHARED, header, median_time, publish

MODELS = ("fastnet", "resnet18", "resnext29_2x64d", "vgg16")


def extracted_train(tmp: Path) -> Path:
    """``train.tar`` extracted once into ``tmp`` (the seeds read loose files from a folder)."""
    folder = tmp / "train-extracted"
    if not (folder / "train").is_dir():
        with tarfile.open(SHARED / "train.tar") as tar:
            tar.extractall(folder, filter="data")
    return folder / "train"


def seeds_epoch(folder: Path) -> int:
    """One epoch of the seeds' pipeline: ImageFolder + PIL transforms + 2 workers."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(folder), transform=tf),
        batch_size=128,
        shuffle=True,
        num_workers=2,
    )
    return sum(int(y.shape[0]) for _, y in loader)


def ours_epoch(dm, epoch: int) -> int:
    """One epoch of ours: cached uint8 batches, batch flip + pad-crop, normalisation."""
    dm.trainer = SimpleNamespace(training=True, current_epoch=epoch)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    n = 0
    for batch in loader:
        _, y = dm.on_after_batch_transfer(batch, 0)
        n += int(y.shape[0])
    return n


def train_step_time(model_name: str, batch: int, repeats: int = 5) -> float:
    from realfake.models import build_model

    model = build_model(model_name, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 2, (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return median_time(step, repeats, warmup=2)


def part_datapath(args) -> None:
    from realfake.data.config import DataConfig
    from realfake.train import compose
    from realfake.train.datamodule import ImageDataModule

    if not (SHARED / "train.tar").is_file():
        print(f"skipped: {SHARED / 'train.tar'} not found")
        return
    folder = extracted_train(Path(args.tmp))
    start = time.perf_counter()
    dm = ImageDataModule(DataConfig(source=str(folder), val_fraction=0.0, batch_size=128))
    dm.setup()
    cache_s = time.perf_counter() - start
    # The same data with experiment=robust's degradations on top (its own config file, composed
    # as training composes it): what robust training adds to an epoch is this difference.
    robust_cfg = compose(
        ["experiment=robust", f"data.source={folder}", "data.val_fraction=0", "data.batch_size=128"]
    )
    robust_dm = ImageDataModule(robust_cfg.data)
    robust_dm.setup()
    seeds, ours, robust = [], [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        n_seeds = seeds_epoch(folder)
        seeds.append(n_seeds / (time.perf_counter() - t))
        t = time.perf_counter()
        n_ours = ours_epoch(dm, r)
        ours.append(n_ours / (time.perf_counter() - t))
        t = time.perf_counter()
        n_robust = ours_epoch(robust_dm, r)
        robust.append(n_robust / (time.perf_counter() - t))
        print(
            f"repeat {r}: seeds {seeds[-1]:,.0f} img/s, ours {ours[-1]:,.0f} img/s, "
            f"ours + robust {robust[-1]:,.0f} img/s"
        )
    ratio = statistics.median(o / s for o, s in zip(ours, seeds, strict=True))
    step = train_step_time("fastnet", 128)
    data_per_batch = 128 / statistics.median(ours)
    robust_per_batch = 128 / statistics.median(robust)
    lines = [
        *header(),
        f"- Data: the 60,000 images of `train.tar` extracted to a folder; both pipelines read "
        f"that folder. Ours decodes it once into the cache first ({cache_s:.1f} s this run, "
        f"or a few ms when already cached), then every epoch reads uint8 batches from memory.",
        "- Seeds: `ImageFolder` + `Compose([RandomHorizontalFlip(), ToTensor(), Normalize()])` + "
        "`DataLoader(num_workers=2, batch_size=128, shuffle=True)`. Ours: `ImageDataModule` "
        "batches + batch flip + pad-4 random crop + normalisation (more augmentation than the "
        "seeds'), on the CPU.",
        f"- One epoch each, interleaved, {args.repeats} repeats; figures are medians, the ratio "
        "is the median of per-repeat ratios.",
        "",
        "| pipeline | images/s (median) | per 128-image batch |",
        "| --- | ---: | ---: |",
        f"| seeds' (PIL, 2 workers) | {statistics.median(seeds):,.0f} | "
        f"{128 / statistics.median(seeds) * 1000:.1f} ms |",
        f"| realfake (cached uint8, batch augment) | {statistics.median(ours):,.0f} | "
        f"{data_per_batch * 1000:.2f} ms |",
        f"| realfake + `experiment=robust` degradations | {statistics.median(robust):,.0f} | "
        f"{robust_per_batch * 1000:.2f} ms |",
        "",
        f"**Ratio ours / seeds': {ratio:.0f}×** (goal ≥ 20×). One training step of the default "
        f"model (`fastnet`, batch 128, fp32) takes {step * 1000:.0f} ms here, so data is "
        f"{data_per_batch / step:.1%} of a step (goal ≤ 5%).",
        "",
        f"**Robust training's cost**: its degradations (each kind on 5% of the images, "
        f"`configs/experiment/robust.yaml`) add {(robust_per_batch - data_per_batch) * 1000:.1f} "
        f"ms per 128-image batch, {(robust_per_batch - data_per_batch) / step:.1%} of that "
        "training step; the network's work is unchanged.",
    ]
    report("## Speed: data path vs the seeds' pipeline", lines, args)


SETTINGS = {
    "fp32": dict(bf16=False, channels_last=False, compile=False),
    "bf16 autocast": dict(bf16=True, channels_last=False, compile=False),
    "channels_last": dict(bf16=False, channels_last=True, compile=False),
    "compile": dict(bf16=False, channels_last=False, compile=True),
    "channels_last + compile": dict(bf16=False, channels_last=True, compile=True),
    "bf16 + channels_last": dict(bf16=True, channels_last=True, compile=False),
    "bf16 + channels_last + compile": dict(bf16=True, channels_last=True, compile=True),
}


def throughput(
    model_name: str, batch: int, steps: int, bf16: bool, channels_last: bool, compile: bool
) -> tuple[float, float]:
    """Training images/s and the first step's loss for one setting."""
    from realfake.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name, 2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if compile:
        model.compile()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch,), generator=gen)
    losses = []

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss))

    seconds = median_time(step, steps, warmup=2 if compile else 1)
    return batch / seconds, losses[0]


def part_train(args) -> None:
    from realfake.models import build_model, count_macs

    names = args.models or list(MODELS)
    lines = [
        *header(),
        f"- Training step = forward + cross-entropy backward + SGD step, batch {args.batch}, "
        f"32 px, random data; median of {args.steps} timed steps after warm-up (compile: 2 "
        "warm-up steps, so compilation time is excluded). 'loss Δ' is the first step's loss "
        "minus fp32's on the same weights and batch: a correctness check of each setting.",
        "",
        "| model | MACs/img | setting | train img/s | vs fp32 | loss Δ |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for name in names:
        macs = count_macs(build_model(name, 2), 32)
        base, base_loss = None, None
        for label, opts in SETTINGS.items():
            if label not in args.settings:
                continue
            rate, loss = throughput(name, args.batch, args.steps, **opts)
            base = base or rate
            base_loss = base_loss if base_loss is not None else loss
            print(f"{name:16s} {label:32s} {rate:8.1f} img/s  loss {loss:.4f}")
            lines.append(
                f"| {name} | {macs / 1e6:,.0f}M | {label} | {rate:,.1f} | {rate / base:.2f}× | "
                f"{loss - base_loss:+.4f} |"
            )
    report("## Speed: training throughput per setting on CPU", lines, args)


def part_peak(args) -> None:
    from realfake.models import build_model, count_macs

    n = 2048
    peaks = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        seconds = median_time(lambda a=a, b=b: a @ b, 7, warmup=2)
        peaks[dtype] = 2 * n**3 / seconds
    lines = [
        *header(),
        f"- Peak: median of 7 {n}×{n} matrix products on all threads (fp32 and bf16). "
        "Achieved: 3 × 2 × forward MACs per image (forward + backward ≈ 3 forwards) × training "
        f"images/s, batch {args.batch}, fp32 (bf16 autocast for the bf16 column).",
        "",
        f"Matmul peak: fp32 {peaks[torch.float32] / 1e9:,.0f} GFLOP/s, "
        f"bf16 {peaks[torch.bfloat16] / 1e9:,.0f} GFLOP/s.",
        "",
        "| model | fp32 img/s | fp32 GFLOP/s | % of fp32 peak | bf16 img/s | % of bf16 peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.models or ["fastnet", "resnet18"]:
        macs = count_macs(build_model(name, 2), 32)
        fp32, _ = throughput(name, args.batch, args.steps, False, False, False)
        bf16, _ = throughput(name, args.batch, args.steps, True, False, False)
        f32 = 6 * macs * fp32
        b16 = 6 * macs * bf16
        lines.append(
            f"| {name} | {fp32:,.1f} | {f32 / 1e9:,.1f} | {f32 / peaks[torch.float32]:.1%} | "
            f"{bf16:,.1f} | {b16 / peaks[torch.bfloat16]:.1%} |"
        )
        print(lines[-1])
    report("## Speed: fraction of the machine's peak", lines, args)


def part_inference(args) -> None:
    from realfake.models import build_model

    lines = [
        *header(),
        "- Eval-mode forward under `torch.inference_mode()`, fp32, 32 px; median over repeats.",
        "",
        "| model | batch 1 img/s | batch 1 latency | batch 256 img/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in args.models or ["fastnet", "resnet18"]:
        model = build_model(name, 2).eval()
        rates = {}
        for batch, repeats in ((1, 50), (256, 5)):
            x = torch.randn(batch, 3, 32, 32)
            with torch.inference_mode():
                seconds = median_time(lambda x=x, m=model: m(x), repeats, warmup=3)
            rates[batch] = (batch / seconds, seconds)
        lines.append(
            f"| {name} | {rates[1][0]:,.0f} | {rates[1][1] * 1000:.1f} ms | {rates[256][0]:,.0f} |"
        )
        print(lines[-1])
    report("## Speed: inference on CPU", lines, args)


PHASES = ("data", "forward", "backward", "optimizer")


def part_profile(args) -> None:
    """Where one training step of the default recipe goes: phases, then the costliest operators."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from realfake.data.config import DataConfig
    from realfake.models import build_model
    from realfake.train.config import OptimConfig
    from realfake.train.datamodule import ImageDataModule
    from realfake.train.optim import build_optimizer

    source = SHARED / "train.tar" if (SHARED / "train.tar").is_file() else None
    dm = ImageDataModule(DataConfig(source=str(source) if source else None, batch_size=args.batch))
    dm.setup()
    dm.trainer = SimpleNamespace(training=True, current_epoch=0)
    torch.manual_seed(0)
    model = build_model(args.models[0] if args.models else "fastnet", 2)
    model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, OptimConfig())
    batches = iter(dm.train_dataloader())
    totals = dict.fromkeys(PHASES, 0.0)

    def step(timed: bool) -> None:
        marks = [time.perf_counter()]
        with record_function("data"):
            x, y = dm.on_after_batch_transfer(next(batches), 0)
            x = x.contiguous(memory_format=torch.channels_last)
        marks.append(time.perf_counter())
        with record_function("forward"):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        marks.append(time.perf_counter())
        with record_function("backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        marks.append(time.perf_counter())
        with record_function("optimizer"):
            opt.step()
        marks.append(time.perf_counter())
        if timed:
            for phase, a, b in zip(PHASES, marks, marks[1:], strict=False):
                totals[phase] += b - a

    for _ in range(3):
        step(False)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step(True)
    total = sum(totals.values())
    per_step = total / args.steps
    lines = [
        *header(),
        f"- One training step of the default recipe's pieces by hand (no Lightning): "
        f"`ImageDataModule` batch of {args.batch} from "
        f"{'train.tar' if source else 'the embedded set'} (flip + crop + normalise), "
        "`fastnet` in channels_last fp32, label-smoothed cross-entropy, SGD-Nesterov with "
        f"weight decay; {args.steps} profiled steps after 3 warm-up steps "
        "(`torch.profiler`, CPU). Phase times are wall-clock; operator times are the "
        "profiler's self CPU time (summed over threads' work as the profiler records it).",
        "",
        f"Step: {per_step * 1000:.0f} ms for {args.batch} images "
        f"({args.batch / per_step:,.0f} img/s under the profiler).",
        "",
        "| phase | ms per step | share |",
        "| --- | ---: | ---: |",
    ]
    for phase in PHASES:
        lines.append(
            f"| {phase} | {totals[phase] / args.steps * 1000:.1f} | {totals[phase] / total:.1%} |"
        )
    events = [e for e in prof.key_averages() if e.key not in PHASES]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    self_total = sum(e.self_cpu_time_total for e in events)
    lines += [
        "",
        "| operator (top 12 by self CPU time) | calls per step | ms per step | share |",
        "| --- | ---: | ---: | ---: |",
    ]
    for e in events[:12]:
        lines.append(
            f"| `{e.key}` | {e.count / args.steps:.0f} | "
            f"{e.self_cpu_time_total / args.steps / 1000:.1f} | "
            f"{e.self_cpu_time_total / self_total:.1%} |"
        )
    report("## Speed: profile of a training step", lines, args)


def report(heading: str, lines: list[str], args) -> None:
    publish(heading, lines, update=not args.no_update)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["datapath", "train", "peak", "inference", "profile"])
    parser.add_argument("--models", nargs="*", help=f"default: {', '.join(MODELS)}")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per setting")
    parser.add_argument("--repeats", type=int, default=3, help="data-path epochs per pipeline")
    parser.add_argument("--tmp", default="/tmp/realfake-bench", help="where train.tar is extracted")
    parser.add_argument("--no-update", action="store_true", help="print only")
    args = parser.parse_args()
    {
        "datapath": part_datapath,
        "train": part_train,
        "peak": part_peak,
        "inference": part_inference,
        "profile": part_profile,
    }[args.part](args)


if __name__ == "__main__":
    main()
