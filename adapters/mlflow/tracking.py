"""MLflow bookkeeping for pipeline runs, through an explicit ``MlflowClient`` (no fluent globals,
so it works the same from Prefect task threads and Dask worker processes).

Layout: one experiment ``dgnn-<dataset>-<task>``; one parent run per pipeline run (config as
params, git commit, data version, summary metrics, plots, the packaged model); one child run per
module step (:mod:`adapters.mlflow.step_runs`). Registration: :mod:`adapters.mlflow.registry`.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT as DATASET_CONTEXT

from dgnn.data.stage_folders import file_lock
from dgnn.processes import pid_alive
from adapters.process import interrupts, settings, stores

PARENT_TAG = "mlflow.parentRunId"


def experiment_name(dataset: str, task: str) -> str:
    """The experiment of ``dataset``/``task`` runs, and the registered model they add versions to."""
    return f"dgnn-{dataset}-{task}"


def client(uri: str | None = None) -> MlflowClient:
    """The process's client for ``uri`` (default: the project's store).

    One per store and process: building an ``MlflowClient`` opens a new SQLAlchemy engine and
    checks the database schema (about 0.1 s on sqlite), and a pipeline run needs a client in the
    flow, in every module task and in the report. The store's sessions are per call, so task
    threads can share it; the process id in the key keeps a forked child off its parent's engine.
    """
    return _client(uri or settings.tracking_uri(), os.getpid())


@functools.lru_cache(maxsize=8)
def _client(uri: str, pid: int) -> MlflowClient:  # noqa: ARG001 - pid is part of the cache key
    stores.prepare(uri)
    if settings.sqlite_path(uri) is not None:
        _fast_sqlite_commits()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


_SQLITE_TUNED = False


def _fast_sqlite_commits() -> None:
    """WAL journal + synchronous=NORMAL on sqlite connections opened by this process.

    A default sqlite commit syncs the whole journal to disk (about 7 ms here), and a pipeline run
    commits a few hundred times; in WAL mode with NORMAL sync a commit appends to the log and the
    database stays consistent after a crash (only the last transactions can be lost on power
    failure). WAL also lets readers (the MLflow UI, other sweep workers) work while one writes.
    """
    global _SQLITE_TUNED
    if _SQLITE_TUNED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _tune(dbapi_connection, record):  # noqa: ARG001
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    _SQLITE_TUNED = True


class BackgroundLogger:
    """Logs child runs on one background thread, in submission order, so that MLflow writes
    overlap the next module's training. :meth:`drain` waits and re-raises the first error."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dgnn-mlflow")
        self._futures = []

    def submit(self, fn, *args) -> None:
        self._futures.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        futures, self._futures = self._futures, []
        errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)


_BACKGROUND: dict[str, BackgroundLogger] = {}


def log_later(parent_run_id: str, fn, *args) -> None:
    """``fn(*args)`` on the background logger the flow opened for this parent run, so that it
    overlaps the next module's training; here and now in another process (a Dask worker)."""
    logger = _BACKGROUND.get(parent_run_id)
    if logger is None:
        fn(*args)
    else:
        logger.submit(fn, *args)


@contextlib.contextmanager
def background_logging(parent_run_id: str):
    logger = _BACKGROUND[parent_run_id] = BackgroundLogger()
    try:
        yield logger
    finally:
        _BACKGROUND.pop(parent_run_id, None)
        try:
            logger.close()
        except Exception:  # noqa: BLE001 - drained (and raised) on the success path already
            pass


@contextlib.contextmanager
def store_lock(uri: str | None = None):
    """Serialise registry updates between processes sharing a sqlite store (no-op for servers)."""
    db = settings.sqlite_path(uri or settings.tracking_uri())
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(db.parent / ".dgnn-registry.lock"):
        yield


# The experiment kinds the UI knows are in mlflow/server/js (ExperimentKind): "custom_model_development"
# is model training, which opens an experiment on its runs and metrics (not on traces).
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the description the UI shows


def ensure_experiment(mlflow_client: MlflowClient, name: str, description: str | None = None) -> str:
    """The id of experiment ``name``, created if missing; marked as model training and described
    with ``description`` unless it already has a kind or a description (a user may edit them)."""
    tags = {KIND_TAG: MODEL_TRAINING} | ({NOTE_TAG: description} if description else {})
    found = mlflow_client.get_experiment_by_name(name)
    if found is None:
        location = settings.artifact_root(mlflow_client.tracking_uri)
        with store_lock(mlflow_client.tracking_uri):
            found = mlflow_client.get_experiment_by_name(name)
            if found is None:
                return mlflow_client.create_experiment(
                    name, artifact_location=None if location is None else f"{location}/{name}", tags=tags)
    for key, value in tags.items():
        if key not in found.tags:
            mlflow_client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def log_dataset(mlflow_client: MlflowClient, run_id: str, name: str, digest: str, folder: Path,
                profile: dict, context: str = "train") -> None:
    """``folder`` as the run's input dataset (what ``mlflow.log_input`` records: the runs table's
    Dataset column), in MLflow's layout for a local source."""
    dataset = Dataset(name=name, digest=digest[:36], source_type="local",  # the store keeps 36 characters
                      source=json.dumps({"uri": folder.resolve().as_uri()}), profile=json.dumps(profile))
    mlflow_client.log_inputs(run_id, datasets=[DatasetInput(dataset, [InputTag(DATASET_CONTEXT, context)])])


def flatten(value, prefix: str = "") -> dict[str, str]:
    """Nested dicts/lists -> {"train.modules.0.width": "128", ...} (MLflow params are strings)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out |= flatten(v, f"{prefix}{k}.")
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for i, v in enumerate(value):
            out |= flatten(v, f"{prefix}{i}.")
        return out
    return {prefix.rstrip("."): str(value)}


def provenance(source_name: str) -> dict[str, str]:
    """The tags MLflow's fluent API would set and ``create_run`` does not: who ran it ("Created by"
    in the UI), from what, and at which commit (see :func:`git_commit`)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry and no $USER
        user = str(os.getuid())
    return {"mlflow.user": user, "mlflow.source.type": "LOCAL",
            "mlflow.source.name": source_name, **git_commit()}


def git_commit(folder: Path | None = None) -> dict[str, str]:
    """Commit of the code (the ``dgnn`` package's repository) and whether the tree is dirty."""
    folder = folder or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": sha, "git_commit": sha, "git_dirty": str(bool(dirty)).lower()}


def _owner_tags() -> dict[str, str]:
    return {"dgnn.host": socket.gethostname(), "dgnn.pid": str(os.getpid())}


def start_run(mlflow_client: MlflowClient, experiment_id: str, name: str, *, tags: dict | None = None,
              params: dict | None = None, parent_id: str | None = None) -> str:
    tags = {**_owner_tags(), **(tags or {})}
    if parent_id:
        tags[PARENT_TAG] = parent_id
    run = mlflow_client.create_run(experiment_id, run_name=name,
                                   tags={k: str(v) for k, v in tags.items()})
    _OPEN[run.info.run_id] = mlflow_client
    if params:
        log_batch(mlflow_client, run.info.run_id, params=params)
    return run.info.run_id


# The runs :func:`start_run` opened and nothing closed yet: what :func:`fail_open_runs` closes when
# the process must end at once (:mod:`adapters.process.lifeline`).
_OPEN: dict[str, MlflowClient] = {}


@contextlib.contextmanager
def run_closed_by_itself(mlflow_client: MlflowClient, experiment_id: str, name: str, *, tags: dict | None = None,
                         params: dict | None = None):
    """:func:`start_run`, yielding its id; ended FINISHED when the block completes, else FAILED or
    KILLED (:func:`fail_run`) and the error re-raised."""
    run_id = start_run(mlflow_client, experiment_id, name, tags=tags, params=params)
    try:
        yield run_id
    except BaseException as err:
        fail_run(mlflow_client, run_id, err)
        raise
    end_run(mlflow_client, run_id)


def fail_open_runs(message: str) -> None:
    for run_id, mlflow_client in list(_OPEN.items()):
        fail_run(mlflow_client, run_id, message)


def metric_items(metrics: dict, step: int = 0, model_id: str | None = None) -> list[Metric]:
    """``metrics`` at ``step``, linked to Logged Model ``model_id`` if given."""
    now = now_ms()
    return [Metric(k, float(v), now, step, model_id=model_id) for k, v in metrics.items() if v is not None]


def series_items(key: str, values, start: int = 1, times: list[float] | None = None) -> list[Metric]:
    """One value per step (e.g. the loss of every SGD step), steps ``start``, ``start + 1``, ...,
    stamped with ``times`` (``time.time()`` values, one per value) or else now."""
    times = times or [time.time()] * len(values)
    return [Metric(key, float(v), int(t * 1000), start + i) for i, (v, t) in enumerate(zip(values, times))]


def log_batch(mlflow_client: MlflowClient, run_id: str, *, params: dict | None = None,
              tags: dict | None = None, metrics: list[Metric] = ()) -> None:
    """Params, tags and metrics in as few calls as MLflow's batch limits allow (100 params, 100
    tags, 1000 entities a call): each call is a database transaction."""
    params = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
    tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    metrics = list(metrics)
    while params or tags or metrics:
        p, params = params[:100], params[100:]
        t, tags = tags[:100], tags[100:]
        room = 1000 - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        mlflow_client.log_batch(run_id, metrics=m, params=p, tags=t)


def log_metrics(mlflow_client: MlflowClient, run_id: str, metrics: dict, step: int = 0) -> None:
    log_batch(mlflow_client, run_id, metrics=metric_items(metrics, step))


def set_tags(mlflow_client: MlflowClient, run_id: str, tags: dict) -> None:
    log_batch(mlflow_client, run_id, tags=tags)


def now_ms() -> int:
    return int(time.time() * 1000)


def end_run(mlflow_client: MlflowClient, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> None:
    """End the run; ``end_time`` (ms) when it ended before this call (logged in the background)."""
    mlflow_client.set_terminated(run_id, status=status, end_time=end_time)
    _OPEN.pop(run_id, None)


def fail_run(mlflow_client: MlflowClient, run_id: str, error: BaseException | str, end_time: int | None = None) -> None:
    """Mark a run FAILED with the cause as a tag, or KILLED with ``interrupted=SIGINT``/``SIGTERM``
    when Ctrl-C or SIGTERM ended it; never raises (it runs on the error path)."""
    try:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        signum = None if isinstance(error, str) else interrupts.signal_of(error)
        interrupted = {"interrupted": signum.name} if signum else {}
        set_tags(mlflow_client, run_id, {"error": message[:5000], **interrupted})
        mlflow_client.set_terminated(run_id, status="KILLED" if signum else "FAILED", end_time=end_time)
        _OPEN.pop(run_id, None)
    except Exception:  # noqa: BLE001 - the original error matters more
        pass


def reap_stale_runs(mlflow_client: MlflowClient, experiment_id: str) -> list[str]:
    """Runs still RUNNING whose process on this host is gone (killed, crashed): mark them FAILED."""
    host = socket.gethostname()
    runs = mlflow_client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`dgnn.host` = '{host}'",
        max_results=1000,
    )
    reaped = []
    for run in runs:
        pid = run.data.tags.get("dgnn.pid", "")
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            fail_run(mlflow_client, run.info.run_id, f"process {pid} ended without closing the run")
            reaped.append(run.info.run_id)
    return reaped


def log_json(mlflow_client: MlflowClient, run_id: str, data, artifact_file: str) -> None:
    mlflow_client.log_text(run_id, json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)
