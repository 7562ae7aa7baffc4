"""Throughput of `realfake serve` (torch and ONNX backends) against the write-up's naive server.

Each server runs in its own process on a free loopback port; closed-loop clients (raw_http's
lean keep-alive connections, in this process) POST one 32 px CIFAKE JPEG to the write-up's
`/predict/` and wait for the answer, at 1, 16 and 64 concurrent clients for ``--seconds``
each. For realfake's servers the Prometheus stage histograms, read before and after each
level, say where a request's time went: multipart parsing, decoding, waiting for a batch, the
forward pass, and the batch sizes.

    python benchmarks/bench_serve.py RUN [--onnx MODEL.onnx] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_http
from load_serve import embedded_images
from serve_common import realfake_serve, running

LEVELS = (1, 16, 64)
STAGES = ("parse", "decode", "wait", "forward")


async def closed_loop(url: str, images: list[bytes], clients: int, seconds: float) -> dict:
    """``clients`` clients, each sending its next request when the last is answered."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    requests = [
        raw_http.post_files("/predict/", f"{host}:{port}", [("data", "x.jpg", im, "image/jpeg")])
        for im in images
    ]
    latencies: list[float] = []
    failures = 0

    async def client(k: int) -> None:
        nonlocal failures
        connection = raw_http.Connection(host, port)
        i = k
        try:
            while time.perf_counter() < stop:
                request = requests[i % len(requests)]
                i += clients
                started = time.perf_counter()
                try:
                    answer = await connection.request(request)
                    failures += answer.status != 200
                except raw_http.HttpError:
                    failures += 1
                latencies.append(time.perf_counter() - started)
        finally:
            await connection.close()

    stop = time.perf_counter() + seconds
    began = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    n = len(latencies)
    return {
        "clients": clients,
        "requests": n,
        "rps": n / elapsed,
        "p50": latencies[n // 2] * 1000,
        "p99": latencies[min(n - 1, int(0.99 * n))] * 1000,
        "failures": failures,
    }


def scrape(url: str) -> dict[str, float]:
    """Sums and counts of the stage, forward and batch-size histograms."""
    text = httpx.get(url + "/metrics", timeout=10).text
    out = {}
    for name, value in re.findall(
        r"^(realfake_\w+(?:_sum|_count)(?:\{[^}]*\})?) (\S+)$", text, re.M
    ):
        out[name] = float(value)
    return out


def breakdown(before: dict, after: dict) -> str:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    n = delta('realfake_stage_seconds_count{stage="parse"}') or 1
    parts = []
    for stage in STAGES:
        total = delta('realfake_stage_seconds_sum{stage="' + stage + '"}')
        parts.append(f"{stage} {1000 * total / n:.1f}")
    batches = delta("realfake_batch_size_count") or 1
    mean_batch = delta("realfake_batch_size_sum") / batches
    per_pass = 1000 * delta("realfake_forward_seconds_sum") / batches
    return f"{' / '.join(parts)} ms; mean batch {mean_batch:.1f} images, {per_pass:.0f} ms per pass"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="run directory or .ckpt")
    parser.add_argument("--onnx", help="the same model exported to ONNX (realfake export)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--only", default="naive,torch,onnx")
    parser.add_argument("--serve-args", default="", help="more `realfake serve` arguments")
    args = parser.parse_args()
    levels = [int(c) for c in args.levels.split(",")]
    images = embedded_images()
    here = Path(__file__).resolve().parent
    servers = {
        "naive": [sys.executable, str(here / "naive_server.py"), args.model, "--port", "{port}"],
        "torch": realfake_serve(args.model, "--backend", "torch", *args.serve_args.split()),
    }
    if args.onnx:
        servers["onnx"] = realfake_serve(args.onnx, "--backend", "onnx", *args.serve_args.split())
    log_dir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(
        "| server | clients | requests/s | p50 ms | p99 ms | non-200 "
        "| where a request's time goes |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, command in servers.items():
        if name not in args.only.split(","):
            continue
        ready = "/health" if name == "naive" else "/ready"
        with running(command, log_dir / f"{name}.log", ready_path=ready) as server:
            raw_http.run(closed_loop(server.url, images, 4, 1.0))  # warm-up
            for clients in levels:
                before = scrape(server.url) if name != "naive" else {}
                row = raw_http.run(closed_loop(server.url, images, clients, args.seconds))
                where = breakdown(before, scrape(server.url)) if name != "naive" else ""
                load = os.getloadavg()[0]
                print(
                    f"| {name} | {clients} | {row['rps']:.1f} | {row['p50']:.0f} "
                    f"| {row['p99']:.0f} "
                    f"| {row['failures']} | {where} (load {load:.1f}) |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
