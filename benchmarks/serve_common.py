"""Start a server in a subprocess on a free loopback port, and stop it; drive its page in headless
Chromium (benchmarks, tests and the documentation's figures)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def rss_mb(self) -> float:
        """Resident memory of the server process (MB), from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextlib.contextmanager
def running(
    command: list[str], log: Path, ready_path: str = "/ready", timeout: float = 120
) -> Iterator[Server]:
    """Run ``command`` (listening on the port that replaces {port}) until ready; stop it after."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"server exited ({process.returncode}): {log.read_text()[-2000:]}"
                )
            try:
                if httpx.get(server.url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout} s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def realfake_serve(model: str | Path, *extra: str) -> list[str]:
    """The command line of `realfake serve MODEL` on the {port} placeholder."""
    return [sys.executable, "-m", "realfake", "serve", str(model), "--port", "{port}", *extra]


def chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) of the system's Chromium, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium_options(webdriver, browser: str, profile: Path, window: str, *extra: str):
    """Headless Chromium as root in a container: no sandbox, no GPU, nothing fetched."""
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={window}",
        f"--user-data-dir={profile}",
        *extra,
    ):
        options.add_argument(flag)
    return options
