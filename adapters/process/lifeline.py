"""A pipeline process stops within seconds once what its run cannot go on without is gone:

* the Prefect server it started (the ephemeral one of ``dgnn run`` / ``dgnn tune``, the full one
  of ``dgnn serve``), OOM-killed or stopped by a signal;
* for a flow run of ``dgnn serve``: the serve process that started it (``kill -9``); its server
  ends with it.

Left alone, the run would train on for minutes: Prefect's client retries every call to a dead API
for about a minute, and the run's result would reach whatever server listens on the port later.
Instead the MLflow runs this process opened are closed FAILED with the cause as ``error``, one line
says what happened and how to resume, and the process exits at once (``os._exit``: the exit path
would make those same calls). Checkpoints and data are written atomically, so what is on disk is
whole; the Prefect runs left RUNNING and the temporary folders are closed and removed by the next
``dgnn`` command (:mod:`adapters.prefect.leftovers`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from typing import Callable
from urllib.parse import urlsplit

from adapters.mlflow import tracking

Check = Callable[[], "str | None"]  # what is gone, or None while all is well


def server_ended(process: subprocess.Popen, what: str = "the Prefect server") -> Check:
    """Whether ``process`` (a server this process started) has exited."""

    def check() -> str | None:
        code = process.poll()
        if code is None:
            return None
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return f"{what} (pid {process.pid}) stopped during the run ({how})"

    return check


def parent_ended(what: str) -> Check:
    """Whether the process that started this one has ended (its orphans are re-parented)."""
    parent = os.getppid()
    return lambda: None if os.getppid() == parent else f"{what} (pid {parent}) ended during the run"


def api_refused(url: str, what: str = "the Prefect server") -> Check:
    """Whether the server of ``url`` refuses connections twice in a row (a slow server, one that
    times out, still counts as there)."""
    parts = urlsplit(url)
    address, refused = (parts.hostname, parts.port or 80), []

    def check() -> str | None:
        try:
            socket.create_connection(address, timeout=5).close()
            refused.clear()
        except ConnectionRefusedError:
            refused.append(True)
        except OSError:
            refused.clear()
        return f"{what} at {url} stopped during the run" if len(refused) >= 2 else None

    return check


def _end(problem: str, report: Callable[[str], int]) -> None:
    tracking.fail_open_runs(problem)
    os._exit(report(problem))


def _watch(check: Check, report: Callable[[str], int], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        problem = check()
        if problem is not None and not stop.is_set():
            _end(problem, report)


@contextlib.contextmanager
def watching(check: Check, report: Callable[[str], int], interval: float = 0.5):
    """While inside, ``check()`` every ``interval`` seconds; on a problem, close this process's open
    MLflow runs and exit with ``report(problem)`` (which prints the one line and returns the status)."""
    stop = threading.Event()
    threading.Thread(target=_watch, args=(check, report, stop, interval), name="dgnn-lifeline", daemon=True).start()
    try:
        yield
    finally:
        stop.set()


def watch_until_exit(check: Check, report: Callable[[str], int], interval: float = 0.5) -> None:
    """:func:`watching` for the rest of this process's life."""
    threading.Thread(target=_watch, args=(check, report, threading.Event(), interval), name="dgnn-lifeline",
                     daemon=True).start()
