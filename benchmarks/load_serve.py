"""Load test of `realfake serve`: many concurrent clients mixing health, predict and bad uploads.

Loopback only, bounded in time. Each client loops: GET /health, POST /predict/ (the write-up's
1:4 mix of health and predict, with 32 px JPEGs) and, one request in six, a hostile upload (not
an image, a decompression bomb, too many files, an unknown field, a body over the limit). It
records every status and every transport error, and samples the server's resident memory.

With ``--clean`` the clients send only health and predict; ``--hostile N`` adds N clients that
do nothing else than send header-bomb PNGs (one declaring 20000×20000 pixels, refused from its
header; one declaring 6300×6300, under the limit, that holds 64 bytes of pixel data) and abort
uploads halfway (the connection closes after half the declared body). Comparing a clean run with
and without them shows what a hostile client costs the others.

    python benchmarks/load_serve.py RUN [--clients 200] [--seconds 30] [--clean] [--hostile 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_http
from serve_common import Server, realfake_serve, running

# What each hostile upload must get (anything else, a 5xx above all, is a failure).
EXPECTED = {
    "health": {200},
    "predict": {200},
    "not_an_image": {415},
    "bomb": {413},
    "too_many_files": {413},
    "unknown_field": {422},
    "too_big": {413},
}
# What a hostile client's requests must get: an aborted upload reads no answer (status 0).
HOSTILE = {"header_bomb": {413}, "header_bomb_under_limit": {415}, "aborted_upload": {0}}
MAX_BODY_MB = 1.0  # the limit the load test's server runs with (small: the oversize body is 1.2 MB)
MAX_FILES = 4


def bomb_png(side: int = 20_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@dataclass
class LoadReport:
    clients: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)  # (kind, status)
    transport_errors: Counter = field(default_factory=Counter)  # (kind, error type)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)

    @property
    def unexpected(self) -> dict[tuple[str, int], int]:
        allowed = {**EXPECTED, **HOSTILE}
        return {k: n for k, n in self.statuses.items() if k[1] not in allowed[k[0]]}

    def answered(self, kinds: tuple[str, ...] = ("health", "predict")) -> int:
        """Answers of ``kinds`` with their expected status (the normal clients' work done)."""
        return sum(n for (k, s), n in self.statuses.items() if k in kinds and s in EXPECTED[k])

    def rss_growth_mb(self, warmup: float) -> float:
        """RSS at the end minus RSS once the warm-up is over."""
        after = [mb for t, mb in self.rss_mb if t >= warmup]
        return after[-1] - after[0] if len(after) > 1 else float("nan")

    def percentile(self, kind: str, q: float) -> float:
        values = sorted(self.latencies.get(kind, []))
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _requests(images: list[bytes], host: str) -> dict[str, list[bytes]]:
    """The encoded requests of each kind (a list: the client picks one at random)."""
    big = b"\0" * int(MAX_BODY_MB * 1.2 * 1024 * 1024)
    jpeg = images[0]
    return {
        "health": [raw_http.get("/health", host)],
        "predict": [
            raw_http.post_files("/predict/", host, [("data", "x.jpg", im, "image/jpeg")])
            for im in images
        ],
        "not_an_image": [
            raw_http.post_files(
                "/predict", host, [("files", "notes.txt", b"not an image", "text/plain")]
            )
        ],
        "bomb": [
            raw_http.post_files("/predict", host, [("files", "bomb.png", bomb_png(), "image/png")])
        ],
        "too_many_files": [
            raw_http.post_files(
                "/predict",
                host,
                [("files", f"{i}.jpg", jpeg, "image/jpeg") for i in range(MAX_FILES + 1)],
            )
        ],
        "unknown_field": [
            raw_http.post_files("/predict", host, [("image", "a.jpg", jpeg, "image/jpeg")])
        ],
        "too_big": [
            raw_http.post_files("/predict", host, [("files", "big.png", big, "image/png")])
        ],
    }


async def _client(
    server: Server,
    requests: dict[str, list[bytes]],
    stop: float,
    report: LoadReport,
    rng,
    bad: bool = True,
) -> None:
    kinds = ["health"] + ["predict"] * 4 + (["bad"] if bad else [])
    bad = [k for k in requests if k not in ("health", "predict")]
    url = urlsplit(server.url)
    connection = raw_http.Connection(url.hostname, url.port)
    try:
        while time.perf_counter() < stop:
            kind = rng.choice(kinds)
            if kind == "bad":
                kind = rng.choice(bad)
            started = time.perf_counter()
            try:
                answer = await connection.request(rng.choice(requests[kind]))
            except raw_http.HttpError as exc:
                report.transport_errors[(kind, str(exc).split(":")[0])] += 1
                continue
            report.statuses[(kind, answer.status)] += 1
            report.latencies.setdefault(kind, []).append(time.perf_counter() - started)
    finally:
        await connection.close()


async def _abort_upload(host: str, port: int, request: bytes) -> None:
    """Send the head and half the body of ``request``, then close the connection."""
    cut = request.index(b"\r\n\r\n") + 4 + (len(request) - request.index(b"\r\n\r\n")) // 2
    _, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request[:cut])
        await writer.drain()
        await asyncio.sleep(0.01)  # the server has started reading the form
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _hostile_client(server: Server, stop: float, report: LoadReport, rng) -> None:
    url = urlsplit(server.url)
    host = url.netloc
    requests = {
        "header_bomb": raw_http.post_files(
            "/predict", host, [("files", "bomb.png", bomb_png(20_000), "image/png")]
        ),
        "header_bomb_under_limit": raw_http.post_files(
            "/predict", host, [("files", "bomb.png", bomb_png(6_300), "image/png")]
        ),
    }
    upload = raw_http.post_files(
        "/predict", host, [("files", "big.jpg", b"\xff\xd8" + b"x" * 200_000, "image/jpeg")]
    )
    connection = raw_http.Connection(url.hostname, url.port)
    try:
        while time.perf_counter() < stop:
            kind = rng.choice([*requests, "aborted_upload"])
            started = time.perf_counter()
            if kind == "aborted_upload":
                try:
                    await _abort_upload(url.hostname, url.port, upload)
                except OSError as exc:
                    report.transport_errors[(kind, type(exc).__name__)] += 1
                    continue
                report.statuses[(kind, 0)] += 1
            else:
                try:
                    answer = await connection.request(requests[kind])
                except raw_http.HttpError as exc:
                    report.transport_errors[(kind, str(exc).split(":")[0])] += 1
                    continue
                report.statuses[(kind, answer.status)] += 1
            report.latencies.setdefault(kind, []).append(time.perf_counter() - started)
    finally:
        await connection.close()


async def _sample_rss(server: Server, stop: float, report: LoadReport, t0: float) -> None:
    while time.perf_counter() < stop:
        report.rss_mb.append((time.perf_counter() - t0, server.rss_mb()))
        await asyncio.sleep(0.5)
    report.rss_mb.append((time.perf_counter() - t0, server.rss_mb()))


async def load(
    server: Server,
    images: list[bytes],
    clients: int,
    seconds: float,
    seed: int = 0,
    bad: bool = True,
    hostile: int = 0,
) -> LoadReport:
    """``clients`` concurrent clients (and ``hostile`` ones) against ``server`` for ``seconds``.

    ``bad``: each client sends a bad upload one request in six; else only health and predict.
    """
    report = LoadReport(clients, seconds)
    requests = _requests(images, urlsplit(server.url).netloc)
    t0 = time.perf_counter()
    stop = t0 + seconds
    tasks = [
        _client(server, requests, stop, report, random.Random(seed * 1000 + i), bad)
        for i in range(clients)
    ]
    tasks += [
        _hostile_client(server, stop, report, random.Random(seed * 1000 + 999 - i))
        for i in range(hostile)
    ]
    await asyncio.gather(_sample_rss(server, stop, report, t0), *tasks)
    return report


def embedded_images() -> list[bytes]:
    from realfake.data.embedded import embedded_data_path

    root = embedded_data_path() / "test"
    return [p.read_bytes() for p in sorted(root.glob("*/*.jpg"))]


def serve_args() -> list[str]:
    return ["--max-body-mb", str(MAX_BODY_MB), "--max-files", str(MAX_FILES)]


def summary(report: LoadReport, warmup: float) -> str:
    lines = [
        f"{report.clients} clients, {report.seconds:.0f} s: {report.requests} answers "
        f"({report.requests / report.seconds:.0f}/s; health and predict "
        f"{report.answered() / report.seconds:.0f}/s), 5xx: {report.server_errors}, "
        f"transport errors: {sum(report.transport_errors.values())} "
        f"{dict(report.transport_errors)}",
        f"unexpected statuses: {report.unexpected or 'none'}",
        "| request | count | statuses | p50 ms | p99 ms |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for kind in [*EXPECTED, *HOSTILE]:
        got = {s: n for (k, s), n in report.statuses.items() if k == kind}
        if got:
            lines.append(
                f"| {kind} | {sum(got.values())} | {got} "
                f"| {1000 * report.percentile(kind, 0.5):.0f} "
                f"| {1000 * report.percentile(kind, 0.99):.0f} |"
            )
    rss = [mb for _, mb in report.rss_mb]
    after = [mb for t, mb in report.rss_mb if t >= warmup]
    lines.append(
        f"server RSS: start {rss[0]:.0f} MB, after {warmup:.0f} s warm-up {after[0]:.0f} MB, "
        f"end {after[-1]:.0f} MB (growth after warm-up {report.rss_growth_mb(warmup):+.1f} MB; "
        f"max {max(rss):.0f} MB, median {statistics.median(after):.0f} MB)"
    )
    marks, trace = 0.0, []
    for t, mb in report.rss_mb:
        if t >= marks:
            trace.append(f"{t:.0f} s {mb:.0f}")
            marks += 10
    lines.append(f"server RSS (MB) every 10 s: {', '.join(trace)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="run directory, .ckpt or .onnx")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=10, help="seconds before RSS must be flat")
    parser.add_argument("--clean", action="store_true", help="clients send no bad uploads")
    parser.add_argument("--hostile", type=int, default=0, help="hostile clients besides")
    parser.add_argument("--extra", default="", help="more `realfake serve` arguments")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "server.log"
    command = realfake_serve(args.model, *serve_args(), *args.extra.split())
    with running(command, log) as server:
        report = raw_http.run(
            load(
                server,
                embedded_images(),
                args.clients,
                args.seconds,
                bad=not args.clean,
                hostile=args.hostile,
            )
        )
        errors = [
            line
            for line in httpx.get(server.url + "/metrics").text.splitlines()
            if line.startswith("realfake_errors_total{") and "http_" not in line
        ]
    print(summary(report, args.warmup))
    print("server's error counts: " + "; ".join(errors))
    logged = log.read_text()
    print(
        f"server log: {len(logged.splitlines())} lines, {logged.count('Traceback')} tracebacks, "
        f"{logged.count('before its upload was complete')} lines on aborted uploads"
    )
    ok = not report.server_errors and not report.transport_errors and not report.unexpected
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
