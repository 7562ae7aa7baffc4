"""serve(): bind the port, load the model, then answer on uvicorn in one process or several.

The start fails fast, in this order, each failure one sentence (exit code 2 from the CLI): the
port is bound and listening (in use: refused before any model is read), then the model is loaded
and runs one forward pass (a truncated checkpoint, a folder that is not a run, a file that is
not ONNX: the loader's own sentence). Only then does a server answer, so `realfake serve` never
keeps answering 503 for a model that will never load.

One worker: the model and uvicorn run in this process. Several: this process is the supervisor.
It holds the socket, starts the workers (spawned processes, each loading its own model on the
shared socket), waits until every model is ready, replaces a worker that dies, and stops them
all on a signal. Workers die with the supervisor however it ends, ``kill -9`` included (the
guard the data layer's decoding workers use), so none is left holding the port.

Stopping, the same with one worker or many: SIGTERM or Ctrl-C stops accepting connections,
lets in-flight requests finish (up to ``GRACE_S``) and returns, so the command exits 0; a second
Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import uvicorn

from realfake.errors import ConfigError, RealfakeError
from realfake.serve.settings import ServeSettings

log = logging.getLogger("realfake.serve")

# How long in-flight requests may take to finish after SIGTERM.
GRACE_S = 10
# Request line and headers together. h11 refuses a bigger head with a 400 and closes the
# connection; httptools (uvicorn's faster parser) has no limit: 60 MB of headers were read
# into memory. 64 KiB is twice nginx's default (4 buffers of 8 KB) and leaves room for cookies.
MAX_HEADER_BYTES = 64 * 1024
# Longer than clients' idle keep-alive (httpx: 5 s), so a client never reuses a connection in
# the instant the server closes it (a reset, not an answer).
KEEP_ALIVE_S = 15
# Connections the kernel queues while the model loads or every worker is busy (uvicorn's own).
BACKLOG = 2048
# How often the supervisor looks at its workers when nothing happens (seconds).
POLL_S = 0.5


def serve(model: str | Path, settings: ServeSettings, log_level: str = "info") -> None:
    """Serve ``model`` (run directory, .ckpt or .onnx) until SIGTERM or Ctrl-C."""
    path = Path(model)
    if not path.exists():
        raise ConfigError(f"{model}: no such run directory, checkpoint or ONNX file")
    with bind(settings.host, settings.port) as sock:
        if settings.workers == 1:
            app = load_app(path, settings)
            _announce(settings)
            run_server(app, sock, log_level, stop_on=(signal.SIGINT, signal.SIGTERM))
        else:
            Supervisor(path, settings, sock, log_level).run()


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``; a port already in use is one sentence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share the port
            # Lets a restarted server take the port while the last one's connections linger in
            # TIME_WAIT; a port another socket listens on stays refused.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use (another server?); stop it or "
                "choose another --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def load_app(model: Path, settings: ServeSettings) -> Any:
    """The app of ``model``, opened and run once here, so a model that cannot serve fails now."""
    import torch

    from realfake.serve.app import create_app
    from realfake.serve.model import open_scorer

    # The model's thread count, set once in the process it owns (never on import).
    torch.set_num_threads(settings.model_threads())
    # The service's own opening: the same loader and decision rule, so whatever would leave it
    # unready (a threshold frozen with the other TTA included) is refused here instead.
    scorer = open_scorer(model, settings)
    size = scorer.image_size
    try:
        scorer.probabilities(torch.zeros(1, 3, size, size, dtype=torch.uint8))
    except Exception as exc:  # a device that cannot run it (CUDA out of memory, ...)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"{model} loaded but its first forward pass on {settings.device} failed: {reason}"
        ) from None
    return create_app(scorer, settings)


def run_server(app: Any, sock: socket.socket, log_level: str, stop_on: tuple[int, ...]) -> None:
    """Answer on ``sock`` until one of the ``stop_on`` signals, then finish in-flight requests."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # one line per request costs more than a small forward pass
        http="h11",  # the parser with a header limit (MAX_HEADER_BYTES)
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_graceful_shutdown=GRACE_S,
        timeout_keep_alive=KEEP_ALIVE_S,
        backlog=BACKLOG,
    )
    _Server(config, stop_on).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn's server, stopped gracefully by ``stop_on`` signals and returning afterwards.

    uvicorn re-raises the signal once it has shut down, so one process died of SIGTERM (143)
    while a supervisor of several exited 0; returning gives every case the same exit code.
    """

    def __init__(self, config: uvicorn.Config, stop_on: tuple[int, ...]) -> None:
        super().__init__(config)
        self.stop_on = stop_on

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may set handlers; the caller stops the server
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in self.stop_on}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _announce(settings: ServeSettings) -> None:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info(
        "serving on http://%s:%d with %d worker process(es), %d model thread(s) each",
        host,
        settings.port,
        settings.workers,
        settings.model_threads(),
    )


# --- several workers -----------------------------------------------------------------------


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection  # the supervisor's end: the worker says "ready" or why it failed
    ready: bool = False


class Supervisor:
    """Runs ``settings.workers`` worker processes on one socket until SIGTERM or Ctrl-C."""

    def __init__(
        self, model: Path, settings: ServeSettings, sock: socket.socket, log_level: str
    ) -> None:
        self.model = model
        self.settings = settings
        self.sock = sock
        self.log_level = log_level
        # Spawned, not forked: a fork of a process that has run torch's thread pools can hang.
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.signals = 0  # SIGTERM/SIGINT received: 1 stops gracefully, 2 at once

    def run(self) -> None:
        """Start every worker, wait for their models, supervise; stop them all on a signal."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.workers = [self._start() for _ in range(self.settings.workers)]
            self._supervise()
        finally:
            self._stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals > 1:  # the second Ctrl-C: no more waiting
            for worker in self.workers:
                worker.process.kill()

    def _start(self) -> _Worker:
        ours, theirs = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_main,
            args=(str(self.model), self.settings, self.sock, theirs, os.getpid(), self.log_level),
            name="realfake-serve-worker",
        )
        process.start()  # from the main thread, which PR_SET_PDEATHSIG ties the worker to
        theirs.close()
        return _Worker(process, ours)

    def _supervise(self) -> None:
        announced = False
        while not self.signals:
            if not announced and all(w.ready for w in self.workers):
                _announce(self.settings)
                announced = True
            pending = [w.conn for w in self.workers if not w.ready]
            wait([w.process.sentinel for w in self.workers] + pending, timeout=POLL_S)
            for i, worker in enumerate(self.workers):
                if not worker.ready and worker.conn.poll():
                    self._hear(worker)
                if worker.process.exitcode is None or self.signals:
                    continue
                if not worker.ready:
                    raise RealfakeError(
                        f"worker process {worker.process.pid} exited (code "
                        f"{worker.process.exitcode}) before its model was ready; its log above "
                        "says why"
                    )
                log.warning(
                    "worker process %d exited (code %s); starting another",
                    worker.process.pid,
                    worker.process.exitcode,
                )
                worker.conn.close()
                self.workers[i] = self._start()

    def _hear(self, worker: _Worker) -> None:
        """Take the worker's word: ready, or the error that stops the whole service."""
        try:
            kind, detail = worker.conn.recv()
        except (EOFError, OSError):
            return  # it died before saying anything: its exit code is looked at next
        if kind == "ready":
            worker.ready = True
        elif isinstance(detail, RealfakeError):
            raise detail
        else:
            raise RuntimeError(f"worker process {worker.process.pid} failed: {detail}")

    def _stop(self) -> None:
        """SIGTERM to every worker; in-flight requests get ``GRACE_S``; then SIGKILL."""
        # Closed here first: once the workers close theirs, the port refuses new connections
        # at once instead of queueing them for a server that is going away.
        self.sock.close()
        for worker in self.workers:
            if worker.process.exitcode is None:
                worker.process.terminate()
        # The workers' own grace, then a little for their lifespan shutdown.
        deadline = time.monotonic() + GRACE_S + 5
        while self.signals < 2 and time.monotonic() < deadline:
            alive = [w.process.sentinel for w in self.workers if w.process.exitcode is None]
            if not alive:
                break
            wait(alive, timeout=min(POLL_S, max(0.0, deadline - time.monotonic())))
        for worker in self.workers:
            if worker.process.exitcode is None:
                log.warning("worker process %d did not stop in time: killed", worker.process.pid)
                worker.process.kill()
            worker.process.join()
            worker.conn.close()


def _worker_main(
    model: str,
    settings: ServeSettings,
    sock: socket.socket,
    conn: Connection,
    parent: int,
    log_level: str,
) -> None:
    """One worker process: load the model, say so, and answer on the supervisor's socket."""
    from realfake.data.build import watch_parent

    # Dies with the supervisor (kill -9 included) and leaves Ctrl-C to it: the supervisor
    # turns a Ctrl-C into one SIGTERM for each worker.
    watch_parent(parent)
    # A spawned process starts with no logging set up: the same format as the command line's.
    logging.basicConfig(
        level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s", force=True
    )
    try:
        app = load_app(Path(model), settings)
    except RealfakeError as exc:
        conn.send(("failed", exc))
        raise SystemExit(2) from None
    except Exception as exc:
        log.exception("worker process %d could not load the model", os.getpid())
        conn.send(("crashed", " ".join(str(exc).split()) or type(exc).__name__))
        raise SystemExit(1) from None
    conn.send(("ready", None))
    conn.close()
    run_server(app, sock, log_level, stop_on=(signal.SIGTERM,))
