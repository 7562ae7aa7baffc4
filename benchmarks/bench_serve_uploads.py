"""Large uploads against `realfake serve`: does /health stall, does RSS come back to its plateau?

The server (one worker, torch backend, `--max-body-mb 64`) runs in its own process on loopback.

1. Stall: one POST /predict of 16 PNGs of 38 KB, each 6300×6300 grayscale pixels (under the
   40 MP limit, ~1.2 s each to decode on this machine), while another connection sends
   GET /health every 10 ms: the slowest and the median /health answer.
2. Memory: after a warm-up of small requests, ``--clients`` closed-loop clients (8) each POST
   ``--uploads`` (4) PNGs of 6000×6000 pixels (36 MP, a smooth gradient: ~110 MB of RGB once
   decoded) to /predict, one after the other, for ``--rounds`` rounds. The server's RSS is
   sampled from /proc every 50 ms: at the plateau before, at the peak, right after each round
   and after ``--settle`` seconds idle.

    python benchmarks/bench_serve_uploads.py RUN [--clients 8] [--uploads 4] [--rounds 2]

To measure another version of the service, run it with that version first on PYTHONPATH (the
server process inherits the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_http
from serve_common import Server, realfake_serve, running

SIDE = 6000  # 36 MP


def big_png(side: int = SIDE) -> bytes:
    """A side×side RGB PNG of smooth gradients (compresses to a few MB, decodes to side²×3 B)."""
    from PIL import Image

    ramp = np.linspace(0, 255, side, dtype=np.float32)
    r = np.broadcast_to(ramp[None, :], (side, side))
    g = np.broadcast_to(ramp[:, None], (side, side))
    b = (r + g) / 2
    pixels = np.stack([r, g, b], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


async def _sample(server: Server, until: asyncio.Event, into: list[float]) -> None:
    while not until.is_set():
        into.append(server.rss_mb())
        await asyncio.sleep(0.05)
    into.append(server.rss_mb())


async def _round(server: Server, request: bytes, clients: int, uploads: int) -> dict:
    url = urlsplit(server.url)
    statuses: list[int] = []

    async def client() -> None:
        connection = raw_http.Connection(url.hostname, url.port, timeout=600)
        try:
            for _ in range(uploads):
                statuses.append((await connection.request(request)).status)
        finally:
            await connection.close()

    samples: list[float] = []
    done = asyncio.Event()
    sampler = asyncio.create_task(_sample(server, done, samples))
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - started
    done.set()
    await sampler
    return {"statuses": statuses, "peak": max(samples), "after": samples[-1], "seconds": seconds}


def heavy_png(side: int = 6300) -> bytes:
    """A side×side grayscale PNG of zeros: ~38 KB that decode to side² (×3 in RGB) bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, format="PNG")
    return buffer.getvalue()


async def stall(server: Server, files: int = 16) -> list[str]:
    """/health latency while one request of ``files`` heavy PNGs is decoded."""
    url = urlsplit(server.url)
    png = heavy_png()
    parts = [("files", f"{i}.png", png, "image/png") for i in range(files)]
    request = raw_http.post_files("/predict", url.netloc, parts)
    probe = raw_http.get("/health", url.netloc)
    uploader = raw_http.Connection(url.hostname, url.port, timeout=600)
    prober = raw_http.Connection(url.hostname, url.port)
    await prober.request(probe)
    started = time.perf_counter()
    task = asyncio.create_task(uploader.request(request))
    latencies = []
    while not task.done():
        t = time.perf_counter()
        await prober.request(probe)
        latencies.append(time.perf_counter() - t)
        await asyncio.sleep(0.01)
    answer = await task
    took = time.perf_counter() - started
    await uploader.close()
    await prober.close()
    return [
        f"stall: {files} PNGs of {len(png) / 1000:.0f} KB declaring 6300×6300 in one /predict: "
        f"answered {answer.status} in {took:.1f} s; meanwhile {len(latencies)} GET /health, "
        f"slowest {1000 * max(latencies):.0f} ms, median "
        f"{1000 * statistics.median(latencies):.0f} ms",
        "",
    ]


async def measure(server: Server, png: bytes, args: argparse.Namespace) -> list[str]:
    url = urlsplit(server.url)
    host = url.netloc
    small = raw_http.post_files("/predict/", host, [("data", "x.png", _small_png(), "image/png")])
    warm = raw_http.Connection(url.hostname, url.port)
    for _ in range(50):
        await warm.request(small)
    await warm.close()
    await asyncio.sleep(1)
    plateau = statistics.median([server.rss_mb() for _ in range(10)])
    request = raw_http.post_files("/predict", host, [("files", "big.png", png, "image/png")])
    lines = [
        f"plateau after 50 small requests: {plateau:.0f} MB; PNG {len(png) / 1e6:.1f} MB, "
        f"{SIDE}×{SIDE}",
        "",
        "| round | answers | seconds | peak MB | right after MB | after "
        f"{args.settle:.0f} s idle MB | above the plateau MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in range(1, args.rounds + 1):
        got = await _round(server, request, args.clients, args.uploads)
        await asyncio.sleep(args.settle)
        settled = server.rss_mb()
        counts = {s: got["statuses"].count(s) for s in sorted(set(got["statuses"]))}
        lines.append(
            f"| {k} | {counts} | {got['seconds']:.1f} | {got['peak']:.0f} | {got['after']:.0f} "
            f"| {settled:.0f} | {settled - plateau:+.0f} |"
        )
    return lines


def _small_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 120, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="run directory, .ckpt or .onnx")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--uploads", type=int, default=4, help="large uploads per client a round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds after a round")
    parser.add_argument("--extra", default="", help="more `realfake serve` arguments")
    args = parser.parse_args()
    png = big_png()
    log = Path(tempfile.mkdtemp()) / "server.log"
    command = realfake_serve(args.model, "--max-body-mb", "64", *args.extra.split())
    with running(command, log) as server:
        lines = raw_http.run(stall(server))
        lines += raw_http.run(measure(server, png, args))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
