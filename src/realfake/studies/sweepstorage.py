"""A sweep's Optuna storage: opened with timeouts, its secrets masked, its dead trials retried.

Every wait on the storage is bounded: connecting (libpq's ``connect_timeout``), each statement
(PostgreSQL's ``statement_timeout``, MySQL's read/write timeouts), a connection from the pool
(``pool_timeout``) and a peer that vanished (TCP keepalives). A storage that does not answer is
one ConfigError naming it, its password masked, as every URL this package prints is
(``mask_secrets``).

A trial is owned by one worker process, recorded as the trial's ``worker`` attribute (host, PID
namespace, PID). A trial still RUNNING whose worker is gone (same host, process not running) or
that never got an owner within the grace period is failed and retried at once, without waiting
for Optuna's heartbeat to go stale, which remains the rule for workers on other hosts.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from realfake.errors import ConfigError
from realfake.studies.sweepfile import STORAGE_KINDS

log = logging.getLogger(__name__)

STORAGE_TIMEOUT_S = 60  # the longest one request to the storage may take
# Connecting (TCP, TLS, authentication) takes well under a second on a working network: a server
# that has not answered in 5 s is not coming, and the user hears so within seconds.
CONNECT_TIMEOUT_S = 5
WORKER_KEY = "worker"  # the trial's user attribute naming the process that runs it

# user:password@ in a URL, and password-like parameters in a query string or a libpq DSN.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+(?=@)")
_PARAM_SECRET = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|sslpassword|secret|token|api_key)=)[^\s&;'\"]+",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """``text`` with every URL password and password parameter replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\g<head>***", str(text))
    return _PARAM_SECRET.sub(r"\g<head>***", text)


def storage_kind(url: str) -> str:
    """The storage's back end (one of STORAGE_KINDS), or a ConfigError naming the URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        backend = None
    if backend not in STORAGE_KINDS:
        raise ConfigError(
            f"--storage {mask_secrets(url)} is not a storage URL of a kind Optuna supports; "
            f"expected {', '.join(f'{k}://...' for k in STORAGE_KINDS)} (e.g. "
            "postgresql://USER@HOST/DB)"
        )
    return backend


def with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg
    (3), the dev extra installs psycopg2; an explicit ``postgresql+DRIVER://`` is kept."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def engine_kwargs(url: str, timeout_s: float = STORAGE_TIMEOUT_S) -> dict[str, Any]:
    """SQLAlchemy engine arguments that bound every wait on the storage by ``timeout_s``."""
    kind = storage_kind(url)
    if kind == "sqlite":
        # A local file: the only wait is another worker's write lock.
        return {"connect_args": {"timeout": timeout_s}}
    connect_s = connect_timeout(timeout_s)
    pooled = {"pool_timeout": timeout_s, "pool_pre_ping": True}
    if kind == "postgresql":
        args = {
            "connect_timeout": connect_s,
            "options": f"-c statement_timeout={round(timeout_s * 1000)}",
            # A server that vanished mid-session (a network cut): found by keepalives, and
            # unacknowledged data gives up after the timeout.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": round(timeout_s * 1000),
        }
        return {"connect_args": args, **pooled}
    # MySQL drivers (PyMySQL, mysqlclient) bound each socket read and write themselves.
    args = {"connect_timeout": connect_s, "read_timeout": timeout_s, "write_timeout": timeout_s}
    return {"connect_args": args, **pooled}


def connect_timeout(timeout_s: float) -> int:
    """Seconds to wait for a connection: at most CONNECT_TIMEOUT_S, whole, and >= 2 (libpq)."""
    return max(2, min(CONNECT_TIMEOUT_S, round(timeout_s)))


def storage_error(
    exc: BaseException, url: str, timeout_s: float, connecting: bool = False
) -> ConfigError:
    """One sentence for a storage that failed: the URL (masked) and the driver's own words."""
    detail = _driver_message(exc)
    lowered = detail.lower()
    if "timeout" in lowered or "timed out" in lowered:
        if connecting:
            what = f"did not accept a connection within {connect_timeout(timeout_s)} s ({detail})"
            hint = "check that the server is up and reachable from here"
        else:
            what = f"did not answer within {timeout_s:g} s ({detail})"
            hint = "check that the server is up and not locked, or raise --storage-timeout"
    else:
        what = f"failed: {detail}"
        hint = "check the URL, the server and its credentials"
    return ConfigError(f"the sweep storage {mask_secrets(url)} {what}; {hint}")


def _driver_message(exc: BaseException) -> str:
    """The database driver's first line, found under SQLAlchemy's and Optuna's wrappers.

    A timeout anywhere in the chain is the cause to name: Optuna retries a query that timed out
    inside the same aborted transaction, and reports that second failure.
    """
    from sqlalchemy.exc import DBAPIError

    chain: list[BaseException] = []
    visited: set[int] = set()
    seen: BaseException | None = exc
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        chain.append(seen.orig if isinstance(seen, DBAPIError) and seen.orig else seen)
        seen = seen.__cause__ or seen.__context__
    lines = [_first_line(e) for e in chain]
    timeouts = [line for line in lines if "timeout" in line.lower() or "timed out" in line.lower()]
    drivers = [line for e, line in zip(chain, lines, strict=True) if e is not exc]
    return mask_secrets((timeouts or drivers or lines)[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # SQLAlchemy appends a link and the statement; the first line is the driver's sentence.
    first = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"\s*\(Background on this error at: [^)]*\)", "", first).rstrip(" .")


def open_storage(
    url: str,
    timeout_s: float = STORAGE_TIMEOUT_S,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
    max_retry: int | None = None,
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url`` with bounded waits; heartbeats and retries if given."""
    from optuna.storages import RDBStorage

    kwargs = engine_kwargs(url, timeout_s)
    beat = {}
    if heartbeat_s is not None:
        beat = {
            "heartbeat_interval": heartbeat_s,
            "grace_period": grace_s,
            "heartbeat_stale_trial_callback": Retry(max_retry),
        }
    attempt = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while True:
            try:
                return RDBStorage(with_driver(url), engine_kwargs=kwargs, **beat)
            except Exception as exc:  # a bad URL, a server that does not answer, no driver
                # Workers started together on a new database race to create Optuna's tables;
                # the loser finds them made a moment later.
                attempt += 1
                text = str(exc)  # PostgreSQL: "duplicate key ...", then "... already exists"
                if ("already exists" in text or "duplicate key" in text) and attempt < 3:
                    time.sleep(attempt)
                    continue
                raise storage_error(exc, url, timeout_s, connecting=True) from None


# --- retries ---------------------------------------------------------------------------------


def retry_history(trial: FrozenTrial) -> list[int]:
    """The trials this one retries, oldest first (empty for a first try)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return list(Optuna.retry_history(trial))


def retry_of(trial: FrozenTrial) -> int | None:
    """The number of the first trial this one retries, or None."""
    history = retry_history(trial)
    return history[0] if history else None


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials that another trial retries (every step of a chain of retries)."""
    return {n for t in trials for n in retry_history(t)}


class Retry:
    """Queue ``trial``'s values again as a WAITING trial, as Optuna's retry callback does, but
    without its user attributes (its reason, its owner and its interruption are not the retry's).
    """

    def __init__(self, max_retry: int | None = None) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> int | None:
        """The number of the new trial, or None when ``trial`` was retried often enough."""
        history = [*retry_history(trial), trial.number]
        if self.max_retry is not None and len(history) > self.max_retry:
            return None
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs={"failed_trial": history[0], "retry_history": history},
            )
        )
        # Only the worker that failed ``trial`` retries it, so its history names one trial.
        return next(
            t.number for t in study.get_trials(deepcopy=False) if retry_history(t) == history
        )


# --- workers ---------------------------------------------------------------------------------


def this_worker() -> dict[str, Any]:
    """This process as a trial's owner: host, PID namespace (containers share hosts) and PID."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: only the heartbeat can tell a dead worker
        namespace = None
    return {"host": socket.gethostname(), "pid_ns": namespace, "pid": os.getpid()}


def worker_gone(owner: Any) -> bool:
    """Whether ``owner`` (``this_worker()`` of some process) no longer runs its trial.

    Called between trials: a trial this process still holds RUNNING then is a leftover.
    """
    here = this_worker()
    if not isinstance(owner, dict) or here["pid_ns"] is None:
        return False
    if (owner.get("host"), owner.get("pid_ns")) != (here["host"], here["pid_ns"]):
        return False  # another machine or container: its heartbeat decides
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == here["pid"]:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: it runs
        return False
    # A reused PID reads as alive: the trial then waits for its heartbeat to go stale.
    return False


def fail_dead_trials(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    grace_s: float,
    retry: Callable[[optuna.Study, FrozenTrial], int | None],
) -> list[tuple[FrozenTrial, str]]:
    """Fail (and retry) the RUNNING trials whose worker is gone; (trial, reason) for each.

    Called between this process's trials (``worker_gone``).
    """
    failed = []
    now = datetime.now()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(WORKER_KEY)
        if owner is None:
            # A worker names itself as its trial starts: one that never did died in between
            # (where no heartbeat is written either, so Optuna would wait for ever).
            age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            if age <= grace_s:
                continue
            reason = f"its worker never started it ({age:.0f} s without an owner)"
        elif worker_gone(owner):
            reason = (
                f"its worker (process {owner['pid']} on {owner['host']}) ended while running it"
            )
        else:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        log.warning("trial %d: %s; failed, and queued again", t.number, reason)
        frozen = storage.get_trial(trial_id)
        retry(study, frozen)
        failed.append((frozen, reason))
    return failed
