"""`realfake export` stopped half-way: its temporary ``.part`` file never stays behind.

A slow disk is simulated by an export whose ``onnx.save_model`` pauses once the ``.part`` file is
written; the test signals or kills it there, the moment a real export is most exposed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

# The real command, with a save that signals it has written the .part, then waits.
SLOW_SAVE = """
import pathlib, sys, time
import onnx
from realfake.cli import main

real_save = onnx.save_model

def slow_save(proto, path, **kwargs):
    real_save(proto, path, **kwargs)
    pathlib.Path(sys.argv[1]).touch()
    time.sleep(120)

onnx.save_model = slow_save
sys.exit(main(sys.argv[2:]))
"""


def _default_sigint() -> None:
    # A shell that starts a job in the background (as CI may start the test run) ignores SIGINT
    # in it, and an ignored signal stays ignored across exec: give the child a terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _slow_export(run: Path, out: Path, saved: Path) -> subprocess.Popen:
    """`realfake export RUN --out OUT --force`, paused once its .part is written (``saved``)."""
    argv = [sys.executable, "-c", SLOW_SAVE, str(saved)]
    argv += ["export", str(run), "--out", str(out), "--force"]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 180
    while not saved.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err_text = process.communicate()
            pytest.fail(f"the export never reached its save ({process.returncode}): {err_text}")
        time.sleep(0.05)
    return process


def _parts(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.part"))


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_export_removes_its_part_and_keeps_the_previous_file(
    tiny_run, tmp_path, sig, code
):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous export")
    process = _slow_export(tiny_run, out, tmp_path / "saved")
    try:
        assert len(_parts(out)) == 1  # the export is writing it now
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert process.returncode == code, err
    assert "Traceback" not in err, err
    name = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert err.strip().splitlines()[-1] == f"export stopped ({name}); {out} is as it was"
    assert _parts(out) == []
    assert out.read_bytes() == b"the previous export"


@pytest.mark.slow
def test_the_next_export_removes_a_part_left_by_kill_9_but_not_a_running_exports(
    tiny_run, tmp_path, caplog
):
    from realfake.cli import main
    from realfake.inference.onnx import OnnxPredictor

    out = tmp_path / "model.onnx"
    running = _slow_export(tiny_run, out, tmp_path / "running-saved")
    killed = None
    try:
        (live,) = _parts(out)
        killed = _slow_export(tiny_run, out, tmp_path / "killed-saved")
        (stale,) = set(_parts(out)) - {live}
        killed.kill()  # kill -9: no code runs, the part stays
        killed.wait(timeout=30)
        assert stale.exists()
        an_hour_ago = time.time() - 3600  # found by the next export, as a user would run it
        os.utime(stale, (an_hour_ago, an_hour_ago))
        with caplog.at_level(logging.WARNING, logger="realfake.export.onnx"):
            assert main(["export", str(tiny_run), "--out", str(out), "--force"]) == 0
        assert not stale.exists()
        messages = [r.getMessage() for r in caplog.records]
        assert any(str(stale) in m and "killed" in m for m in messages), messages
        assert live.exists()  # another export is still writing it
        assert OnnxPredictor.load(out).spec.model == "fastnet"
    finally:
        for process in (running, killed):
            if process is not None:
                process.kill()
                process.wait(timeout=30)
    assert _parts(out) == [live]  # what that kill -9 left, for the next export to remove
