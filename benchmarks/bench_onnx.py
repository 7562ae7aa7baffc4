"""Inference speed (issue 15): the torch Predictor against ONNX Runtime on the exported graph.

    python benchmarks/bench_onnx.py                       # fastnet and resnet18
    python benchmarks/bench_onnx.py --models fastnet --rounds 5 --no-update

Both backends score the same prepared uint8 images through ``probabilities`` (normalisation,
network, softmax, float64 out; flip TTA off), so the figures are what ``predict`` and the
service pay per image beyond decoding. Each figure is the median of ``--rounds`` rounds, the
two backends taking turns, each round the median of its timed calls after warm-up: on a shared
machine the turns spread the load over both. Prints a table and rewrites its section of
BENCHMARKS.md (``--no-update`` not to).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import header, median_time, publish

HEADING = "## ONNX Runtime vs torch inference"
BATCHES = ((1, 50), (256, 3))  # (images per call, timed calls per round)


def make_predictors(name: str, folder: Path):
    """An untrained 2-class model at 32 px as a torch Predictor and as its ONNX export."""
    from realfake.export import export_onnx
    from realfake.inference import OnnxPredictor, Predictor
    from realfake.runs import ModelSpec

    spec = ModelSpec(
        model=name,
        classes=("FAKE", "REAL"),
        image_size=32,
        resize="stretch",
        mean=(0.47, 0.46, 0.42),
        std=(0.24, 0.23, 0.25),
        flip_tta=False,
        positive_class="FAKE",
    )
    torch.manual_seed(0)
    predictor = Predictor(spec.build_model(), spec)
    return predictor, OnnxPredictor.load(export_onnx(predictor, folder / f"{name}.onnx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["fastnet", "resnet18"])
    parser.add_argument("--rounds", type=int, default=3, help="turns per backend and batch size")
    parser.add_argument("--no-update", action="store_true", help="print only")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            torch_p, onnx_p = make_predictors(name, Path(tmp))
            check = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
            delta = float(np.abs(torch_p.probabilities(check) - onnx_p.probabilities(check)).max())
            rates: dict[tuple[str, int], float] = {}
            for batch, calls in BATCHES:
                x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
                rounds: dict[str, list[float]] = {"torch": [], "onnx": []}
                for _ in range(args.rounds):
                    for backend, p in (("torch", torch_p), ("onnx", onnx_p)):
                        seconds = median_time(
                            lambda p=p, x=x: p.probabilities(x, batch_size=len(x)), calls, 3
                        )
                        rounds[backend].append(seconds)
                for backend, times in rounds.items():
                    rates[backend, batch] = batch / statistics.median(times)
            rows.append((name, rates, delta))
            print(name, {f"{b}@{n}": round(r) for (b, n), r in rates.items()}, f"Δ {delta:.1e}")

    import onnxruntime

    lines = [
        *header(),
        f"- ONNX Runtime {onnxruntime.__version__} (CPUExecutionProvider, default threads: "
        f"{os.cpu_count()} logical CPUs here); torch threads {torch.get_num_threads()}.",
        "- `Predictor.probabilities` vs `OnnxPredictor.probabilities` on the same prepared uint8 "
        "images (normalise, network, softmax; flip TTA off), untrained 2-class models at 32 px; "
        f"images/s = median over {args.rounds} alternating rounds, each the median of "
        f"{BATCHES[0][1]} (batch 1) or {BATCHES[1][1]} (batch 256) timed calls after 3 warm-up "
        "calls. Max |Δp|: largest probability difference of the two backends on 64 random "
        "images.",
        "- The machine is shared with other work (see the load average): figures move by tens "
        "of per cent between runs; the ratio of the two backends, measured in alternating "
        "turns, is the steadier figure.",
        "",
        "| model | torch b1 img/s | ONNX RT b1 img/s | b1 speed-up | torch b256 img/s "
        "| ONNX RT b256 img/s | b256 speed-up | max \\|Δp\\| |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r, delta in rows:
        lines.append(
            f"| {name} | {r['torch', 1]:,.0f} | {r['onnx', 1]:,.0f} | "
            f"{r['onnx', 1] / r['torch', 1]:.2f}× | {r['torch', 256]:,.0f} | "
            f"{r['onnx', 256]:,.0f} | {r['onnx', 256] / r['torch', 256]:.2f}× | {delta:.1e} |"
        )
    publish(HEADING, lines, update=not args.no_update)


if __name__ == "__main__":
    main()
