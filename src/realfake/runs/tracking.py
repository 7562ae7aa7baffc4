"""Experiment tracking that never crashes a run: MLflow (local SQLite by default), guarded."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"


class MlflowTracker:
    """Logs parameters, per-epoch metrics, tags and artifacts of one run to MLflow.

    Every call is guarded: the first failure becomes a warning and tracking is switched off for
    the rest of the run, because losing a plot is better than losing a training run.
    """

    def __init__(
        self, tracking_uri: str | None, experiment: str, parent_run_id: str | None = None
    ) -> None:
        self.tracking_uri = (
            tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        )
        self.experiment = experiment
        self.parent_run_id = parent_run_id  # new runs nest under it (a sweep's trials)
        self.run_id: str | None = None
        self._client: Any = None
        self.enabled = True

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return fn()
        except Exception as exc:  # any tracking failure must stay a warning
            self.enabled = False
            warnings.warn(
                f"MLflow tracking disabled after a failure to {what} at {self.tracking_uri}: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    def start(
        self, run_name: str, params: dict[str, Any], tags: dict[str, str], run_id: str | None
    ) -> str | None:
        """Open (or reopen, when resuming) the MLflow run; returns its id."""

        def _start() -> str:
            from mlflow.tracking import MlflowClient

            _probe(self.tracking_uri)  # an unusable store fails here, in seconds, not retries
            client = MlflowClient(tracking_uri=self.tracking_uri)
            exp = client.get_experiment_by_name(self.experiment)
            exp_id = (
                exp.experiment_id
                if exp
                else client.create_experiment(
                    self.experiment, artifact_location=_artifact_location(self.tracking_uri)
                )
            )
            if run_id is None:
                nest = {"mlflow.parentRunId": self.parent_run_id} if self.parent_run_id else {}
                run = client.create_run(exp_id, run_name=run_name, tags={**tags, **nest})
                rid = run.info.run_id
                # MLflow caps parameter values at 6000 characters; configs are short.
                from mlflow.entities import Param

                batch = [Param(k, str(v)) for k, v in params.items()]
                for i in range(0, len(batch), 100):
                    client.log_batch(rid, params=batch[i : i + 100])
            else:
                rid = run_id
                client.update_run(rid, status="RUNNING")
            self._client = client
            return rid

        with _quiet("alembic", "mlflow.store.db.utils"):  # a new SQLite store's migrations
            self.run_id = self._guard("start a run", _start)
        return self.run_id

    def attach(self, run_id: str) -> str | None:
        """Reopen an existing run to add to it (an evaluation), leaving its status as it is."""

        def _attach() -> str:
            from mlflow.tracking import MlflowClient

            _probe(self.tracking_uri)
            client = MlflowClient(tracking_uri=self.tracking_uri)
            client.get_run(run_id)  # a run deleted from the store fails here, as a warning
            self._client = client
            return run_id

        with _quiet("alembic", "mlflow.store.db.utils"):
            self.run_id = self._guard("reopen the run", _attach)
        return self.run_id

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.run_id is None:
            return
        self._guard(
            "tag the run",
            lambda: [self._client.set_tag(self.run_id, k, str(v)) for k, v in tags.items()],
        )

    def log_epoch(self, row: dict[str, float]) -> None:
        if self.run_id is None:
            return
        step = int(row["epoch"])

        def _log() -> None:
            import math
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [
                Metric(k, float(v), now, step)
                for k, v in row.items()
                if k not in ("epoch",) and not math.isnan(float(v))
            ]
            self._client.log_batch(self.run_id, metrics=metrics)

        self._guard("log epoch metrics", _log)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        if self.run_id is None:
            return
        self._guard(
            "log final metrics",
            lambda: [self._client.log_metric(self.run_id, k, float(v)) for k, v in metrics.items()],
        )

    def log_artifacts(self, paths: list[Path], subdir: str | None = None) -> None:
        if self.run_id is None:
            return
        for path in paths:
            if path.exists():
                self._guard(
                    f"upload {path.name}",
                    lambda p=path: self._client.log_artifact(self.run_id, str(p), subdir),
                )

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is None:
            return
        self._guard("close the run", lambda: self._client.set_terminated(self.run_id, status))


PROBE_TIMEOUT_S = 3.0


def _probe(tracking_uri: str) -> None:
    """Raise at once if the store cannot be used: a server that does not answer within a few
    seconds (MLflow's own client would retry for about 100 s), or a local store's folder that
    cannot be written."""
    scheme = tracking_uri.split(":", 1)[0].lower() if ":" in tracking_uri else "file"
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S)
        except urllib.error.HTTPError:
            return  # it answered: a server is there (its health route may differ)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(f"no tracking server answers ({reason})") from None
    elif scheme == "sqlite" and tracking_uri.startswith("sqlite:///"):
        from realfake.atomic import check_writable_dir

        check_writable_dir(Path(tracking_uri[len("sqlite:///") :]).parent, "tracking store folder")
    elif scheme == "file" or "://" not in tracking_uri:
        from realfake.atomic import check_writable_dir

        local = (
            tracking_uri[len("file://") :] if tracking_uri.startswith("file://") else tracking_uri
        )
        check_writable_dir(Path(local), "tracking store folder")


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise these loggers to WARNING inside the block only."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _artifact_location(tracking_uri: str) -> str | None:
    """Keep artifacts beside a local SQLite store (``mlartifacts/``) rather than in the cwd."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = Path(tracking_uri[len(prefix) :]).resolve()
    return (db.parent / "mlartifacts").as_uri()
