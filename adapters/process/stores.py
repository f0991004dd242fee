"""The stores the pipeline commands write: the MLflow database and artifacts (with the Optuna
studies beside them), the run folders with their checkpoints, and Prefect's home (its database and
cached task results).

They hold the configs, metrics, models and training data of every run, and they are created
readable by their owner only (folders ``0700``, the MLflow database ``0600``): ``$DGNN_STORE_MODE``
(octal, default ``700``) sets another mode for the folders, e.g. ``750`` for a group; folders that
exist already keep theirs. The Prefect API and the MLflow UI have no authentication: they listen
on 127.0.0.1 only, where every local user can reach them.

The MLflow database is opened before a command uses it: a damaged one fails at once with one
line naming it (MLflow itself retries for about two minutes, then says neither which file nor what
to do).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from adapters.process import settings


class StoreError(RuntimeError):
    """A store cannot be used; the message names it and says what to do."""


def folder_mode() -> int:
    text = os.environ.get("DGNN_STORE_MODE", "700")
    try:
        return int(text, 8)
    except ValueError:
        raise ValueError(f"DGNN_STORE_MODE={text!r} is not an octal mode such as 700 or 750") from None


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents, created with :func:`folder_mode`; existing ones keep theirs."""
    path = Path(path)
    for folder in reversed([p for p in [path, *path.parents] if not p.exists()]):
        folder.mkdir(exist_ok=True)
        folder.chmod(folder_mode())  # mkdir's mode would be masked by the umask
    return path


def optuna_storage() -> str:
    """``$DGNN_OPTUNA_STORAGE``, else ``optuna.db`` beside the MLflow sqlite database (or in the
    runs folder when MLflow uses a server): where ``dgnn tune`` keeps its studies."""
    if os.environ.get("DGNN_OPTUNA_STORAGE"):
        return os.environ["DGNN_OPTUNA_STORAGE"]
    db = settings.sqlite_path(settings.tracking_uri())
    folder = private_dir(db.parent if db is not None else settings.runs_dir())
    return f"sqlite:///{folder / 'optuna.db'}"


def prepare(uri: str | None = None) -> None:
    """Check the MLflow database; create the store folders (and a new database file) owner-only."""
    db = settings.sqlite_path(uri or settings.tracking_uri())
    if db is not None:
        check_database(private_dir(db.parent) / db.name)
    for folder in (settings.runs_dir(), Path(os.environ.get("PREFECT_HOME") or settings.project_dir() / ".prefect")):
        private_dir(folder)


def check_database(db: Path) -> None:
    """Create ``db`` empty and ``0600`` when missing (sqlite gives its journal files the same mode),
    else raise :class:`StoreError` unless sqlite can read its schema."""
    try:
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    try:
        with contextlib.closing(sqlite3.connect(db)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{db} is damaged ({err}): move it aside (mv {db} {db}.damaged) and rerun to start a new "
                         "MLflow store, or restore it from a backup") from None
