"""Fault injection: kills at bad moments, concurrent runs, unwritable and full outputs.

Pass means what a user would check: nothing lost (previous files intact or new ones complete),
nothing left running or locked, one clear sentence and the right exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from realfake.cli import main

TRAIN = [
    "trainer.max_epochs=40",
    "trainer.limit_train_batches=4",
    "trainer.channels_last=false",
    "data.batch_size=32",
    "logging.mlflow=false",
    "logging.progress=plain",
]


def _default_sigint() -> None:
    # A shell that starts a job in the background (as CI may start the test run) ignores SIGINT
    # in it, and an ignored signal stays ignored across exec: give the child a terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(args: list[str], data_cache: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "REALFAKE_CACHE": str(data_cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "realfake", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kw,
    )


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended early ({proc.returncode}): {out}{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def _epochs_done(run: Path) -> int:
    path = run / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    return lines[-1]


# --- training ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_training_says_how_to_resume_and_resumes(tmp_path, data_cache, sig, code):
    run = tmp_path / "stop"
    proc = _cli(["train", *TRAIN, f"runs_dir={tmp_path}", "name=stop"], data_cache)
    _wait_for(lambda: _epochs_done(run) >= 1, proc)
    assert (run / ".lock").exists()  # the run is owned while it trains
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert f"realfake train --resume {run}" in err and "Traceback" not in err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert not (run / ".lock").exists()
    if sig == signal.SIGTERM:  # the run goes on from its last checkpoint
        done = _epochs_done(run)
        resumed = _cli(["train", "--resume", str(run)], data_cache)
        time.sleep(0.5)
        _wait_for(lambda: _epochs_done(run) > done, resumed)
        resumed.send_signal(signal.SIGTERM)
        assert resumed.wait(timeout=120) == 143
        assert json.loads((run / "manifest.json").read_text())["resumed"]


@pytest.mark.slow
def test_two_trainings_with_one_name_cannot_share_the_directory(tmp_path, data_cache):
    # Two different models, started together: the folder must hold exactly one of them, whole.
    one = ["train", *TRAIN, "trainer.max_epochs=1", f"runs_dir={tmp_path}", "name=same"]
    first = _cli([*one, "model.name=fastnet"], data_cache)
    second = _cli([*one, "model.name=vgg11"], data_cache)
    results = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "in use" in _one_error_line(loser) or "already holds" in _one_error_line(loser)
    run = tmp_path / "same"
    config = (run / "config.yaml").read_text()
    spec = json.loads((run / "model.json").read_text())
    assert f"name: {spec['model']}" in config  # the checkpoints are the config's model
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    assert not (run / ".lock").exists()


def _unfinished(run: Path, status: str = "interrupted") -> Path:
    """Mark a copy of a run as stopped before it finished (what a kill or a crash leaves)."""
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": status}))
    config = run / "config.yaml"  # the copy keeps the tiny run's config but not its tracking
    config.write_text(config.read_text().replace("mlflow: true", "mlflow: false"))
    return run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_resume_with_no_readable_checkpoint_changes_nothing(tiny_copy, capsys):
    run = _unfinished(tiny_copy)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    last, best = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"
    _truncate(last)
    _truncate(best)
    damaged = {p: p.read_bytes() for p in (last, best)}
    assert main(["train", "--resume", str(run)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(last) in line and str(best) in line and "weights_only=False" not in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == {**files, **damaged}
    assert not (run / ".lock").exists()


@pytest.mark.slow
def test_a_damaged_last_checkpoint_resumes_from_the_intact_best_one(tiny_copy, capsys, caplog):
    run = _unfinished(tiny_copy, "failed")
    config = run / "config.yaml"  # a third epoch, so that the resume trains whichever was best
    config.write_text(config.read_text().replace("max_epochs: 2", "max_epochs: 3"))
    best = run / "checkpoints" / "best.ckpt"
    best_epoch = torch.load(best, weights_only=True)["epoch"]
    _truncate(run / "checkpoints" / "last.ckpt")
    (run / "checkpoints" / ".last.ckpt.x1y2.part").write_bytes(b"half a checkpoint")
    assert main(["train", "--resume", str(run)]) == 0
    said = caplog.text
    assert f"from checkpoints/best.ckpt (after epoch {best_epoch + 1})" in said
    assert "last.ckpt is not a realfake checkpoint or is damaged" in said
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [0, 1, 2]


def test_a_stale_lock_of_a_dead_process_is_taken_over(tiny_copy, caplog):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock = {"pid": int(dead.stdout), "host": socket.gethostname(), "since": "then"}
    _unfinished(tiny_copy)
    (tiny_copy / ".lock").write_text(json.dumps(lock))
    from realfake.train import train

    result = train(resume=tiny_copy)
    assert result.run_dir == tiny_copy and not (tiny_copy / ".lock").exists()
    assert "no longer running" in caplog.text


def test_a_live_lock_refuses_with_one_sentence(tiny_copy, capsys):
    import socket

    (tiny_copy / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert main(["train", "--resume", str(tiny_copy)]) == 2
    assert "is in use by training process" in _one_error_line(capsys.readouterr().err)
    (tiny_copy / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    assert main(["train", "--resume", str(tiny_copy)]) == 2
    assert f"rm {tiny_copy / '.lock'}" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("name", ["../outside", "/tmp/abs", "a/b", ".."])
def test_name_cannot_place_a_run_outside_the_runs_folder(name, tmp_path, tiny_overrides, capsys):
    args = ["train", *tiny_overrides, f"runs_dir={tmp_path / 'runs'}", f"name={name}"]
    assert main(args) == 2
    assert "'name'" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "outside").exists()


# --- outputs ------------------------------------------------------------------------------


def test_predict_keeps_an_existing_csv_unless_forced(tiny_run, test_folder, tmp_path, capsys):
    out = tmp_path / "p.csv"
    out.write_text("precious\n")
    assert main(["predict", str(tiny_run), str(test_folder), "--out", str(out)]) == 2
    assert "--force" in _one_error_line(capsys.readouterr().err)
    assert out.read_text() == "precious\n"
    assert main(["predict", str(tiny_run), str(test_folder), "--out", str(out), "--force"]) == 0
    assert len(pd.read_csv(out)) == 202


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_unwritable_outputs_fail_before_inference(kind, tiny_run, test_folder, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    if kind == "file":
        args = ["predict", str(tiny_run), str(test_folder), "--out", str(tmp_path)]
        expected = "is a folder"
    else:
        args = ["evaluate", str(tiny_run), "--out", str(blocker / "eval"), "--no-figures"]
        expected = "cannot write"
    started = time.perf_counter()
    assert main(args) == 2
    assert expected in _one_error_line(capsys.readouterr().err)
    assert time.perf_counter() - started < 5  # refused before the images were scored


@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    """A small tmpfs mounted at ``path`` (needs root and mount rights: skip otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not permitted'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_output_folder_is_one_sentence(tiny_run, test_folder, tmp_path, capsys):
    with _tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        args = ["predict", str(tiny_run), str(test_folder), "--out", str(ro / "p.csv")]
        assert main(args) == 2
        assert "cannot write" in _one_error_line(capsys.readouterr().err)


def test_a_full_disk_keeps_the_previous_file_whole(tiny_run, test_folder, tmp_path, capsys):
    with _tmpfs(tmp_path / "full", "size=8k") as full:
        out = full / "p.csv"
        out.write_text("previous\n")
        args = ["predict", str(tiny_run), str(test_folder), "--out", str(out), "--force"]
        assert main(args) == 2  # 202 rows (12 kB) do not fit in what is left
        assert "No space left" in _one_error_line(capsys.readouterr().err)
        assert out.read_text() == "previous\n"
        assert [p.name for p in full.iterdir()] == ["p.csv"]  # no partial file left behind


@pytest.mark.slow
def test_a_full_disk_mid_training_keeps_whole_checkpoints_and_the_run_resumes(tmp_path, data_cache):
    # 20 MB hold the first best.ckpt (13.2 MB) but not last.ckpt beside it.
    with _tmpfs(tmp_path / "disk", "size=20m") as disk:
        run = disk / "full"
        args = ["train", *TRAIN, "trainer.max_epochs=2", f"runs_dir={disk}", "name=full"]
        proc = _cli(args, data_cache)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, out + err
        last, best = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"
        line = _one_error_line(err)
        assert f"cannot write {last}: No space left on device" in line
        assert f"`realfake train --resume {run}`" in line
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "failed" and str(last) in manifest["error"]
        # No partial last.ckpt and no temporary file: only the checkpoint that was written whole.
        assert [p.name for p in (run / "checkpoints").iterdir()] == ["best.ckpt"]
        assert torch.load(best, weights_only=True)["epoch"] == 0
        assert not (run / ".lock").exists()

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = _cli(["train", "--resume", str(run)], data_cache)
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out + err
        assert "from checkpoints/best.ckpt (after epoch 1)" in err
        assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
        assert torch.load(last, weights_only=True)["epoch"] == 1
        assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [0, 1]


@pytest.mark.slow
def test_kill_during_predict_leaves_the_old_csv_or_a_complete_new_one(
    tiny_run, test_folder, tmp_path, data_cache
):
    out = tmp_path / "p.csv"
    for delay in (1.0, 2.5, 4.0):
        out.write_text("previous\n")
        args = ["predict", str(tiny_run), str(test_folder), "--out", str(out), "--force"]
        proc = _cli(args, data_cache)
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=60)
        text = out.read_text()
        assert text == "previous\n" or len(pd.read_csv(out)) == 202, text[:200]
        # No partial file: only the CSV and, if predict finished, its sidecar and summary page.
        assert {p.name for p in tmp_path.iterdir()} <= {"p.csv", "p.meta.json", "p.html"}


@pytest.mark.slow
def test_kill_during_evaluate_leaves_valid_json(tiny_run, tmp_path, data_cache):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    for delay in (1.5, 3.0):
        proc = _cli(["evaluate", str(run), "--resamples", "50"], data_cache)
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=60)
        for name in ("metrics.json", "model.json", "manifest.json"):
            if (run / name).exists():
                json.loads((run / name).read_text())  # complete, whichever version
        assert not list(run.rglob("*.part"))
