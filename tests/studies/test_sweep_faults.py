"""Sweeps under faults: a storage that never answers, Ctrl-C and SIGTERM in a trial or before it.

Every wait is bounded (subprocess timeouts), every server is on the loopback interface.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

import realfake.studies.sweep as sweep_module
from realfake.cli import main
from realfake.studies.sweep import SweepInterrupted, count_trials, run_sweep

pytestmark = pytest.mark.slow

SECRET = "S3cret-pw"

RANDOM = """
method: random
metric: {name: val/loss, goal: minimize}
parameters:
  lr: {distribution: log_uniform_values, min: 0.005, max: 0.1}
  model.options.width: {values: [8, 16]}
"""


@pytest.fixture
def sweep_tiny(tiny_overrides: list[str]) -> list[str]:
    """The session's tiny training (tests/conftest.py), without MLflow or a test pass."""
    return [o for o in tiny_overrides if not o.startswith("logging.mlflow")] + [
        "logging.mlflow=false",
        "evaluate_test=false",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _realfake(*args: str) -> list[str]:
    return [sys.executable, "-m", "realfake", *args]


class SilentServer:
    """A loopback TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.first_accept: float | None = None
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.first_accept = self.first_accept or time.monotonic()
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self.sock.close()


def test_a_storage_that_accepts_but_never_answers_is_one_sentence_within_seconds(
    tmp_path, sweep_tiny, capsys
):
    pytest.importorskip("psycopg2", reason="psycopg2 (the dev extra) is needed to reach PostgreSQL")
    sweep = tmp_path / "random.yaml"
    sweep.write_text(RANDOM)
    with SilentServer() as server:
        url = f"postgresql://sweeper:{SECRET}@127.0.0.1:{server.port}/optuna"
        cmd = _realfake("sweep", str(sweep), "--out", str(tmp_path / "sweeps"), "--storage", url)
        done = subprocess.run(
            [*cmd, *sweep_tiny], env=_env(), capture_output=True, text=True, timeout=90
        )
        ended = time.monotonic()
        assert server.first_accept is not None, done.stderr[-2000:]
        # Connecting gives up after 5 s; the rest of the wait is Python starting up.
        assert ended - server.first_accept < 12
        assert done.returncode == 2, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(
            f"error: the sweep storage postgresql://sweeper:***@127.0.0.1:{server.port}/optuna "
            "did not accept a connection within 5 s"
        )
        assert SECRET not in done.stdout + done.stderr
        # `sweep show` on the same storage: the same bound, the password masked as well.
        started = time.monotonic()
        assert main(["sweep", "show", "random", "--storage", url]) == 2
        assert time.monotonic() - started < 12
        err = capsys.readouterr().err
        assert "sweeper:***@" in err and SECRET not in err


def _wait_for(path: Path, worker: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared (worker exit code {worker.poll()})"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_in_a_trial_ends_it_as_interrupted_and_the_printed_command_continues(
    tmp_path, sweep_tiny, sig
):
    sweep = tmp_path / "random.yaml"
    sweep.write_text(RANDOM)
    out = tmp_path / "sweeps"
    # 4 epochs: the signal comes while the first one trains.
    tiny = [*sweep_tiny, "trainer.max_epochs=4"]
    cmd = _realfake("sweep", str(sweep), "--out", str(out), "--trials", "2", "--seed", "3", *tiny)
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        worker = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        run = out / "random" / "runs" / "trial-0"
        try:
            _wait_for(run / "manifest.json", worker, 90)
            worker.send_signal(sig)
            code = worker.wait(timeout=60)
        finally:
            worker.kill()
    name = signal.Signals(sig).name
    assert code == (130 if sig == signal.SIGINT else 143), log.read_text()[-2000:]
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith(f"interrupted: sweep random stopped by {name}: trial 0 was cut short")
    assert "--resume" not in last
    # The trial: interrupted with its reason, not counted, its values queued again.
    study = optuna.load_study(study_name="random", storage=f"sqlite:///{out}/random/study.db")
    cut, queued = study.trials
    assert cut.state == optuna.trial.TrialState.FAIL and cut.user_attrs["interrupted"]
    # Then "before training started" (Lightning's sanity check) or "in epoch k".
    assert cut.user_attrs["fail_reason"].startswith(f"interrupted by {name} ")
    assert queued.state == optuna.trial.TrialState.WAITING and queued.params == cut.params
    assert count_trials(study.trials) == (0, 1)
    # Its run folder: marked interrupted, its lock released.
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    assert not (run / ".lock").exists()
    if sig == signal.SIGTERM:
        return
    # The command printed continues the study: the queued values first, then a new point.
    words = shlex.split(last.split("continue the study with: ", 1)[1])
    assert words[:3] == ["realfake", "sweep", str(sweep)] and words[-len(tiny) :] == tiny
    assert words[words.index("--seed") + 1] == "3" and words[words.index("--trials") + 1] == "2"
    again = subprocess.run(
        _realfake(*words[1:]), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "trial 1/2 (#1, again the values of #0)" in again.stderr
    study = optuna.load_study(study_name="random", storage=f"sqlite:///{out}/random/study.db")
    assert count_trials(study.trials) == (2, 0)
    assert study.trials[1].state == optuna.trial.TrialState.COMPLETE
    assert study.trials[1].params == cut.params


def test_ctrl_c_while_a_trial_is_set_up_is_an_interruption_not_a_failure(
    tmp_path, sweep_tiny, monkeypatch
):
    sweep = tmp_path / "random.yaml"
    sweep.write_text(RANDOM)
    compose = sweep_module.compose

    def compose_then_ctrl_c(layers):
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C before training starts
        return compose(layers)

    monkeypatch.setattr(sweep_module, "compose", compose_then_ctrl_c)
    kwargs = {"trials": 1, "seed": 0, "overrides": sweep_tiny, "out_root": tmp_path / "sweeps"}
    with pytest.raises(SweepInterrupted) as stop:
        run_sweep(sweep, **kwargs)
    assert stop.value.exit_code == 130
    storage = f"sqlite:///{tmp_path}/sweeps/random/study.db"
    cut, queued = optuna.load_study(study_name="random", storage=storage).trials
    assert cut.state == optuna.trial.TrialState.FAIL
    assert cut.user_attrs["fail_reason"] == "interrupted by SIGINT before training started"
    assert queued.params == cut.params
    monkeypatch.undo()
    result = run_sweep(sweep, **kwargs)
    assert result.counted == 1 and result.best_trial == queued.number
