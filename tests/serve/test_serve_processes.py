"""`realfake serve`'s processes, through the real command on loopback: how it starts and stops.

A model that cannot load or a port in use ends the start with one sentence and exit code 2;
SIGTERM lets in-flight requests finish and exits 0 with one worker or several; workers never
outlive their supervisor; a huge request header is refused without hurting the service. Every
server is started in its own session and its whole group is killed afterwards, whatever
happened, so no test leaves a process behind.
"""

from __future__ import annotations

import asyncio
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
import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="reads /proc; the supervisor's guard is Linux's prctl"
)

START_S = 120  # a model load took up to 13 s on 2 cores shared with other jobs
IN_FLIGHT = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(model: Path | str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "realfake", "serve", str(model), "--port", str(port), *extra]


def _default_sigint() -> None:
    # A shell that starts a job in the background (as CI may start the test run) ignores SIGINT
    # in it, and an ignored signal stays ignored across exec: give the child a terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: killed as a whole afterwards
            preexec_fn=_default_sigint,
        )


def _kill_group(process: subprocess.Popen) -> None:
    """Whatever is left of the process's group (workers an old server orphaned included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    port: int
    log: Path


@contextlib.contextmanager
def serving(model: Path, log: Path, *extra: str) -> Iterator[Server]:
    """`realfake serve MODEL` on a free loopback port, ready; its whole group killed after."""
    port = _free_port()
    process = _start(_command(model, port, *extra), log)
    server = Server(process, f"http://127.0.0.1:{port}", port, log)
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert process.poll() is None, f"exited {process.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in {START_S} s: {log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(server.url + "/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield server
    finally:
        _kill_group(process)


def _run_to_end(argv: list[str], log: Path, timeout: float = START_S) -> tuple[int, str]:
    """(exit code, output) of a command expected to end by itself within ``timeout``."""
    process = _start(argv, log)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s: {log.read_text()[-2000:]}")
    finally:
        _kill_group(process)
    return code, log.read_text()


def _workers(parent: int) -> list[int]:
    """Live worker processes of ``parent`` (spawned by multiprocessing), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z" and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, waiting to be reaped


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: "), output
    return lines[-1]


# --- stopping ----------------------------------------------------------------------------


async def _uploads_cut_by(server: Server, image: bytes, stop) -> list[int | str]:
    """IN_FLIGHT /predict uploads, each stopped half-way until ``stop()`` has run."""
    boundary = "realfake-test"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    halves_sent = 0
    all_sent = asyncio.Event()
    stopped = asyncio.Event()

    async def halves():
        nonlocal halves_sent
        yield body[: len(body) // 2]
        halves_sent += 1
        if halves_sent == IN_FLIGHT:
            all_sent.set()
        await stopped.wait()
        yield body[len(body) // 2 :]

    async def upload(client: httpx.AsyncClient) -> int | str:
        headers = {
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(body)),
        }
        try:
            answer = await client.post(server.url + "/predict", content=halves(), headers=headers)
        except httpx.TransportError as exc:
            return type(exc).__name__  # dropped
        return answer.status_code

    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        uploads = [asyncio.create_task(upload(client)) for _ in range(IN_FLIGHT)]
        await asyncio.wait_for(all_sent.wait(), timeout=30)
        await asyncio.sleep(0.5)  # every connection accepted, every request half-read
        stop()
        await asyncio.sleep(0.5)  # the server has begun to shut down
        stopped.set()
        return await asyncio.gather(*uploads)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "how"),
    [(1, "SIGTERM"), (2, "SIGTERM"), (2, "Ctrl-C")],
    ids=["1-worker-sigterm", "2-workers-sigterm", "2-workers-ctrl-c-to-the-group"],
)
def test_a_stop_answers_every_request_in_flight_then_exits_0(
    tiny_run, test_images, tmp_path, workers, how
):
    image = test_images["FAKE"][0].read_bytes()
    with serving(tiny_run, tmp_path / "server.log", "--workers", str(workers)) as server:
        if how == "SIGTERM":  # what `docker stop` or systemd sends the main process

            def stop() -> None:
                server.process.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C reaches every process of the foreground group

            def stop() -> None:
                os.killpg(server.process.pid, signal.SIGINT)

        statuses = asyncio.run(_uploads_cut_by(server, image, stop))
        code = server.process.wait(timeout=30)
        log = server.log.read_text()
    assert statuses == [200] * IN_FLIGHT, log[-3000:]
    assert code == 0, log[-3000:]
    # --threads' help says what the supervisor gives each worker by default.
    threads = max(1, (os.cpu_count() or 1) // workers)
    assert f"{workers} worker process(es), {threads} model thread(s) each" in log, log[-3000:]


def test_threads_help_states_the_default_the_server_uses(capsys):
    from realfake.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "model threads per worker (default: the CPU count divided by --workers" in text


@pytest.mark.slow
def test_workers_are_replaced_when_they_die_and_die_with_their_supervisor(tiny_run, tmp_path):
    with serving(tiny_run, tmp_path / "server.log", "--workers", "2") as server:
        supervisor = server.process.pid
        # /ready answers as soon as one worker is: wait for the supervisor's word that both
        # are, since a worker that dies before its model is ready ends the start instead.
        deadline = time.monotonic() + START_S
        while "with 2 worker process(es)" not in server.log.read_text():
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.2)
        first = _workers(supervisor)
        assert len(first) == 2, first
        os.kill(first[0], signal.SIGKILL)  # a worker dies: the supervisor starts another
        deadline = time.monotonic() + START_S
        while len(now := _workers(supervisor)) < 2 or first[0] in now:
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.2)
        assert httpx.get(server.url + "/ready", timeout=10).status_code == 200

        server.process.kill()  # kill -9: no code of the supervisor runs
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in now):
            assert time.monotonic() < deadline, f"workers {now} outlived their supervisor"
            time.sleep(0.1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/health", timeout=5)
        # The port is free: a new server could bind it at once.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", server.port))
            probe.listen()


# --- failing fast ------------------------------------------------------------------------


def _truncated(run: Path, folder: Path) -> Path:
    data = (run / "checkpoints" / "best.ckpt").read_bytes()
    path = folder / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 3])
    return path


def _not_a_run(run: Path, folder: Path) -> Path:
    path = folder / "photos"
    path.mkdir()
    shutil.copy(run / "config.yaml", path / "config.yaml")
    return path


def _garbage_onnx(run: Path, folder: Path) -> Path:
    path = folder / "model.onnx"
    path.write_bytes(b"\x08\x07garbage, not a protobuf" * 64)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "extra", "named"),
    [
        (_truncated, [], "truncated.ckpt"),
        (_truncated, ["--workers", "2"], "truncated.ckpt"),
        (_not_a_run, [], "photos"),
        (_garbage_onnx, [], "model.onnx"),
        (lambda run, folder: run, ["--backend", "onnx"], "onnx"),
    ],
    ids=[
        "truncated-checkpoint",
        "truncated-checkpoint-2-workers",
        "not-a-run",
        "garbage-onnx",
        "onnx-backend-on-a-run",
    ],
)
def test_a_model_that_does_not_load_ends_the_start_with_one_sentence(
    tiny_run, tmp_path, make, extra, named
):
    model = make(tiny_run, tmp_path)
    port = _free_port()
    code, output = _run_to_end(_command(model, port, *extra), tmp_path / "server.log")
    assert code == 2, output
    assert named in _one_error_line(output)


@pytest.mark.slow
def test_a_port_in_use_is_refused_before_the_model_is_read(tiny_run, tmp_path):
    model = _truncated(tiny_run, tmp_path)  # would fail too, but later
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = _run_to_end(_command(model, port), tmp_path / "server.log")
    assert code == 2, output
    line = _one_error_line(output)
    assert f"port {port}" in line and "in use" in line, line


# --- request limits ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_huge_request_header_is_refused_and_the_service_stays_healthy(
    tiny_run, test_images, tmp_path
):
    line = b"X-Filler: " + b"a" * 1_000_000 + b"\r\n"
    with serving(tiny_run, tmp_path / "server.log") as server:
        started = time.monotonic()
        sent, answer = 0, b""
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            try:
                client.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                for _ in range(60):  # 60 MB of headers
                    client.sendall(line)
                    sent += len(line)
                client.sendall(b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server closed the connection: refused
            with contextlib.suppress(ConnectionResetError):
                answer = client.recv(4096)
        seconds = time.monotonic() - started
        assert sent < 60 * len(line), "the server read 60 MB of headers"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]
        assert seconds < 10
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200
        image = test_images["REAL"][0]
        files = {"files": (image.name, image.read_bytes(), "image/jpeg")}
        answer = httpx.post(server.url + "/predict", files=files, timeout=30)
        assert answer.status_code == 200, answer.text
