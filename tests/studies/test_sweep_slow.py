"""Real sweeps: trials that train, fail, nest in MLflow, and a best config that retrains to the
same validation figure; a SIGKILLed worker resumed; two workers sharing a PostgreSQL study, and
a locked one."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from realfake.cli import main
from realfake.studies.sweep import count_trials, leaderboard, run_sweep
from realfake.train import compose, train

pytestmark = pytest.mark.slow


@pytest.fixture
def sweep_tiny(tiny_overrides: list[str]) -> list[str]:
    """The session's tiny training (tests/conftest.py), deterministic and without a test pass."""
    return [o for o in tiny_overrides if not o.startswith("logging.mlflow")] + [
        "trainer.deterministic=true",
        "evaluate_test=false",
    ]


# W&B's format as a user writes it; grid so that both invalid combinations are always tried.
GRID = """
method: grid
entity: me
metric: {name: validation_loss, goal: minimize}
parameters:
  architecture: {values: [fastnet, resnet18]}
  model.options.width: {values: [8]}          # fastnet only: resnet18 + width is invalid
  lr: {values: [0.02, 0.08]}
"""

BAYES = """
method: bayes
metric: {name: val/loss, goal: minimize}
parameters:
  lr: {distribution: log_uniform_values, min: 0.005, max: 0.1}
  dropout: {distribution: uniform, min: 0.0, max: 0.25}
  model.options.width: {values: [8, 16]}
early_terminate: {type: hyperband, min_iter: 1, eta: 2}
"""


def test_wandb_sweep_runs_nests_in_mlflow_and_its_best_config_retrains_the_same(
    sweep_tiny, tmp_path, capsys
):
    from mlflow.tracking import MlflowClient

    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = run_sweep(
        path,
        out_root=tmp_path / "sweeps",
        overrides=[*sweep_tiny, "logging.mlflow=true", f"logging.tracking_uri={uri}"],
    )
    out = result.out_dir
    assert result.counted == 4  # the grid's size, as no run_cap or --trials was given
    rows = leaderboard(optuna.load_study(study_name="grid", storage=result.storage))
    states = sorted(r["state"] for r in rows)
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert all("invalid combination" in r["reason"] and "width" in r["reason"] for r in failed)
    assert {r["model.name"] for r in failed} == {"resnet18"}
    assert (out / "trials.csv").read_text().count("\n") == 5
    for plot in ("history", "importances", "parallel_coordinates", "slices"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 1000
    # MLflow: one parent run for the sweep, each trial that trained nested under it.
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if r.info.run_name == "sweep-grid"]
    assert len(parents) == 1
    trials = [r for r in runs if r.info.run_name.startswith("trial-")]
    assert len(trials) == 2
    assert {r.data.tags.get("mlflow.parentRunId") for r in trials} == {parents[0].info.run_id}
    # The best config retrains to the same validation figure.
    best = out / "best.yaml"
    top = [line.split(":")[0] for line in best.read_text().splitlines() if line[:1].isalpha()]
    assert "name" not in top and "runs_dir" not in top
    assert "parent_run_id" not in best.read_text()
    again = train(compose([f"experiment={best}", f"runs_dir={tmp_path / 'again'}"]))
    assert again.metrics["best_val_loss"] == pytest.approx(result.best_value, abs=1e-6)
    # `realfake sweep show` prints the leaderboard, best first.
    capsys.readouterr()
    assert main(["sweep", "show", "grid", "--out", str(tmp_path / "sweeps")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].split()[1] == str(result.best_trial)


def _sweep_cmd(sweep: Path, out: Path, tiny: list[str], *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "realfake",
        "sweep",
        str(sweep),
        "--out",
        str(out),
        *extra,
        *tiny,
        "logging.mlflow=false",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_a_sigkilled_worker_is_failed_at_once_retried_and_the_rerun_draws_new_points(
    tmp_path, sweep_tiny
):
    sweep = tmp_path / "bayes.yaml"
    sweep.write_text(BAYES)
    out = tmp_path / "sweeps"
    # The default heartbeat grace (60 s): a worker gone from this host is found without it.
    cmd = _sweep_cmd(sweep, out, sweep_tiny, "--trials", "3", "--seed", "1")
    worker = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    trial1 = out / "bayes" / "runs" / "trial-1" / "manifest.json"
    deadline = time.monotonic() + 50
    while not trial1.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert trial1.exists(), worker.stderr.read().decode()[-2000:] if worker.poll() else "slow"
    worker.send_signal(signal.SIGKILL)  # in the middle of trial 1
    worker.wait()
    storage = f"sqlite:///{out / 'bayes' / 'study.db'}"
    states = [t.state.name for t in optuna.load_study(study_name="bayes", storage=storage).trials]
    assert states == ["COMPLETE", "RUNNING"]

    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    gone = f"trial 1: its worker (process {worker.pid} on {socket.gethostname()}) ended"
    assert gone in again.stderr
    trials = optuna.load_study(study_name="bayes", storage=storage).trials
    assert count_trials(trials) == (3, 0)
    killed = trials[1]
    assert killed.state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1 and retries[0].state.is_finished()
    assert retries[0].params == killed.params  # the same point, tried again
    # The restarted sampler, given the same --seed, does not draw trial 0's point again.
    fresh = [t for t in trials if t.number > 1 and "failed_trial" not in t.system_attrs]
    assert fresh and all(t.params != trials[0].params for t in fresh)
    # The killed trial's run folder: marked interrupted, the dead process's lock gone.
    run = out / "bayes" / "runs" / "trial-1"
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    assert not (run / ".lock").exists()


# --- PostgreSQL --------------------------------------------------------------------------------

SECRET = "S3cret-pw"


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a loopback port; its URL. Skips where none can start."""
    pytest.importorskip("psycopg2", reason="psycopg2 (the dev extra) is needed to reach PostgreSQL")
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip(
            "PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql)"
        )
    # PostgreSQL refuses to run as root: run it as the postgres user in a folder it owns.
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="realfake-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        if not runuser or user is None:
            shutil.rmtree(folder)
            pytest.skip("running as root without a postgres user (or runuser) to start PostgreSQL")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    started = False
    try:
        init = subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder}"
        start = subprocess.run(
            [
                *as_user,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(folder / "log"),
                "-w",
                "start",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if start.returncode != 0:
            pytest.skip(f"the PostgreSQL server did not start: {start.stderr.strip()[-300:]}")
        started = True
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(
                [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_postgresql_study_and_count_every_trial_once(
    tmp_path, postgres_url, sweep_tiny
):
    sweep = tmp_path / "bayes.yaml"
    sweep.write_text(BAYES)
    out = tmp_path / "sweeps"
    # The server trusts loopback connections: the password is never checked, only never shown.
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@")
    workers = [
        subprocess.Popen(
            _sweep_cmd(sweep, out, sweep_tiny, "--trials", "3", "--storage", url, "--seed", str(i)),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for w in workers:
        stdout, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
        assert SECRET not in stdout + err
        assert f"optuna-dashboard {url.replace(SECRET, '***')}" in stdout
    trials = optuna.load_study(study_name="bayes", storage=postgres_url).trials
    assert count_trials(trials) == (3, 0)
    counted = [t for t in trials if not t.user_attrs.get("surplus")]
    assert len(counted) == 3 and all(t.state.is_finished() for t in counted)
    # Every counted trial trained in its own run directory, none twice.
    runs = sorted(p.name for p in (out / "bayes" / "runs").iterdir())
    assert runs == sorted(f"trial-{t.number}" for t in counted if t.user_attrs.get("run_dir"))
    # The two workers ran at the same time (their trials overlap in time).
    spans = sorted((t.datetime_start, t.datetime_complete) for t in counted)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))


def test_a_trial_whose_loss_becomes_nan_is_failed_with_its_reason_and_the_sweep_goes_on(
    tmp_path, sweep_tiny
):
    sweep = tmp_path / "nan.yaml"
    sweep.write_text(
        "method: grid\n"
        "metric: {name: val/loss, goal: minimize}\n"
        "parameters:\n"
        "  lr: {values: [0.05, 1.0e+12]}\n"  # the second one diverges at once
        "  sched.name: {value: none}\n"
    )
    result = run_sweep(sweep, overrides=sweep_tiny, out_root=tmp_path / "sweeps")
    study = optuna.load_study(study_name=result.name, storage=result.storage)
    trials = {t.params["optim.lr"]: t for t in study.trials}
    assert trials[1e12].state == optuna.trial.TrialState.FAIL
    assert "NaN" in trials[1e12].user_attrs["fail_reason"]
    assert trials[0.05].state == optuna.trial.TrialState.COMPLETE
    assert result.best_trial == trials[0.05].number


def test_a_locked_postgresql_study_is_one_sentence_after_the_storage_timeout(
    tmp_path, postgres_url, capsys
):
    import psycopg2

    optuna.create_study(study_name="locked", storage=postgres_url)
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@")
    holder = psycopg2.connect(postgres_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with holder.cursor() as cur:  # held until the rollback below: every read of it waits
            cur.execute("LOCK TABLE trials IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        code = main(["sweep", "show", "locked", "--storage", url, "--storage-timeout", "2"])
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert code == 2 and waited < 10
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == (
        f"error: the sweep storage {url.replace(SECRET, '***')} did not answer within 2 s "
        "(canceling statement due to statement timeout); check that the server is up and not "
        "locked, or raise --storage-timeout"
    )
    assert SECRET not in err
