"""Environment defaults for Prefect and MLflow, which the entry points apply before either is imported.

Everything lands under the *project* folder: ``$DGNN_PROJECT_DIR``, else the current directory.
A variable the user already set is never changed.

| variable | default |
|---|---|
| ``PREFECT_HOME`` | ``<project>/.prefect`` (ephemeral server database, settings) |
| ``PREFECT_RESULTS_LOCAL_STORAGE_PATH`` | ``<project>/.prefect/results`` (cached task results) |
| ``PREFECT_SERVER_ANALYTICS_ENABLED`` / ``DO_NOT_TRACK`` | ``false`` / ``1`` |
| ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` | ``90`` |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///<project>/mlruns/mlflow.db`` (artifacts in ``mlruns/artifacts``) |
| ``MLFLOW_DISABLE_TELEMETRY`` | ``true`` |
| ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` | ``false`` |

``DGNN_RUNS_DIR`` (default ``<project>/.dgnn_cache/runs``) holds the per-step trainer checkpoints
that let a failed pipeline run resume; ``DGNN_OPTUNA_STORAGE`` (default ``optuna.db`` beside the
MLflow database) holds the ``dgnn tune`` studies.
"""

from __future__ import annotations

import os
from pathlib import Path


TOOL_PREFIXES = ("PREFECT_", "MLFLOW_", "DGNN_")


def without_tool_settings(environ=None, prefixes: tuple[str, ...] = TOOL_PREFIXES) -> dict[str, str]:
    """A copy of ``environ`` (default: this process's) without Prefect's, MLflow's and dgnn's
    settings: the environment of a new shell, for a process given stores of its own."""
    return {k: v for k, v in (os.environ if environ is None else environ).items() if not k.startswith(prefixes)}


def project_dir() -> Path:
    return Path(os.environ.get("DGNN_PROJECT_DIR") or os.getcwd()).resolve()


def default_tracking_uri(project: Path | None = None) -> str:
    return f"sqlite:///{(project or project_dir()) / 'mlruns' / 'mlflow.db'}"


def defaults(project: Path | None = None) -> dict[str, str]:
    project = Path(project or project_dir())
    home = project / ".prefect"
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "MLFLOW_TRACKING_URI": default_tracking_uri(project),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a bar per packaged model on stderr
    }


def missing_defaults(project: Path | None = None) -> dict[str, str]:
    """The defaults whose variable is unset (or empty) in this process: what an entry point sets."""
    return {k: v for k, v in defaults(project).items() if not os.environ.get(k)}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).resolve()


def artifact_root(uri: str) -> str | None:
    """Where experiments created here keep artifacts: ``<db folder>/artifacts`` for sqlite stores,
    the server's default for anything else (None)."""
    db = sqlite_path(uri)
    return None if db is None else (db.parent / "artifacts").as_uri()


def tuned_dir() -> Path:
    """Where ``dgnn tune`` writes its chosen config, ``<dataset>-<task>.yaml`` (the latest tune's), for
    ``dgnn run --config``: in the project, not under ``.dgnn_cache`` that ``make clean`` deletes."""
    folder = project_dir() / "tuned"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def runs_dir() -> Path:
    return Path(os.environ.get("DGNN_RUNS_DIR") or project_dir() / ".dgnn_cache" / "runs")
