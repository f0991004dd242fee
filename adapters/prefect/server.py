"""Prefect servers on 127.0.0.1: the ephemeral one of ``dgnn run``, started early, and a full one
for commands that need the server's services.

Without ``PREFECT_API_URL`` a flow run starts Prefect's ephemeral server (a subprocess that lives
as long as this process) on its first API call and waits for it. :func:`start_ephemeral` starts
that same server on a thread instead, so the caller's remaining imports and set-up overlap its
boot.

The ephemeral server does not run the scheduler, so ``dgnn serve`` without ``PREFECT_API_URL``
starts ``prefect server start --host 127.0.0.1`` (state in ``$PREFECT_HOME``, the project's
``.prefect``), points ``PREFECT_API_URL`` at it for as long as it serves, and stops it afterwards.
Its UI is on the same address.

Both servers end with the process that started them, also when it is killed with ``kill -9``
(which skips the ``atexit`` stop): a watchdog process stops them (:func:`dgnn.processes.end_with_owner`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.request
from typing import Callable

from dgnn.processes import end_with_owner


def start_ephemeral() -> Callable[[], tuple[dict[str, float], subprocess.Popen]]:
    """Begin starting Prefect's ephemeral server; return ``wait``, which blocks until it answers.

    ``wait()`` re-raises a failed start and returns the start figures and the server's process.
    The figures: ``start_s`` (import of the server module to healthy) and ``blocked_s`` (the part
    of it that the caller spent only waiting: the import, which runs here because imports on two
    threads can deadlock, plus the wait in ``wait()``).
    """
    started = time.perf_counter()
    server = ephemeral_server()
    imported = time.perf_counter()
    outcome: dict = {}

    def boot() -> None:
        try:
            server.start(timeout=_start_timeout())
            # The server answers its first API request about 0.45 s late (2 cores); the flow's
            # version check would wait for that, so it is made here, as part of the start.
            with urllib.request.urlopen(f"{server.api_url}/admin/version", timeout=30):
                pass
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = err
        outcome["start_s"] = time.perf_counter() - started

    thread = threading.Thread(target=boot, name="prefect-ephemeral-server", daemon=True)
    thread.start()

    def wait() -> tuple[dict[str, float], subprocess.Popen]:
        waiting = time.perf_counter()
        thread.join()
        if "error" in outcome:
            raise RuntimeError(f"the ephemeral Prefect server did not start: {outcome['error']} (set "
                               f"PREFECT_API_URL to use a running server instead)") from outcome["error"]
        return {"start_s": outcome["start_s"],
                "blocked_s": (imported - started) + (time.perf_counter() - waiting)}, server.server_process

    return wait


def _start_timeout() -> int:
    """Seconds an ephemeral server may take to answer (Prefect's own setting, a project default)."""
    return int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))


def ephemeral_server():
    """Prefect's ephemeral server, not started yet; each uvicorn process it spawns is watched by
    :func:`dgnn.processes.end_with_owner` from the moment it is spawned (the server may take
    seconds to boot, and a kill meanwhile would orphan it too). It runs in a session of its own:
    a Ctrl-C in the terminal reaches the whole foreground process group, and a server stopped
    with the run left the run retrying every call to it for about a minute ("Error logging to
    API") before it could exit; now the run closes its runs through the server, which stops when
    the run exits.

    Prefect keeps one server object per port, so its clients find and use this one."""
    return _guarded_server_class()()


@functools.cache
def _guarded_server_class():
    from prefect.server.api import server as module

    class GuardedServer(module.SubprocessASGIServer):
        def _run_uvicorn_command(self):
            # Prefect's Popen call with start_new_session added, seen by that module alone.
            own_session = types.SimpleNamespace(Popen=functools.partial(subprocess.Popen, start_new_session=True))
            module.subprocess = own_session
            try:
                process = super()._run_uvicorn_command()
            finally:
                module.subprocess = subprocess
            end_with_owner(process.pid)
            return process

    return GuardedServer


def can_listen(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now."""
    with socket.socket() as s:
        # As servers bind (uvicorn too): a port whose last connection is in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when a server could listen on it now, else a free port the system picks."""
    if preferred and can_listen(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@contextlib.contextmanager
def prefect_server(port: int | None = 4200, scheduler_loop_seconds: int = 10, timeout: float = 120,
                   env: dict[str, str] | None = None):
    """Yield the API URL of a Prefect server started on 127.0.0.1 (stopped on exit), with this
    process's environment plus ``env``.

    ``port`` when it is free, else any free port. The server's settings name the port it really
    has: ``prefect server start --port`` does not change them, and its UI asks ``/ui-settings``
    for the API address, which would otherwise be ``http://127.0.0.1:4200/api``.
    """
    port = free_port(port)
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        **(env or {}),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(scheduler_loop_seconds),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_UI_API_URL": api,  # wins over its older alias PREFECT_UI_API_URL
    }
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    end_with_owner(process.pid, group=True)  # the server starts uvicorn and its services as children
    try:
        wait_healthy(f"{api}/health", timeout, process)
        yield api
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group started with ``start_new_session=True``; SIGKILL after ``timeout``."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def shared_api():
    """The Prefect API that Dask workers report to: the configured server, or an ephemeral one
    started here (this process's settings name it meanwhile); yields its URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if url:
        yield url
        return
    server = ephemeral_server()
    server.start(timeout=_start_timeout())
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield server.api_url


_NO_HEARTBEATS: tuple = (None, None)  # (settings it was derived from, derived settings)


@contextlib.contextmanager
def without_heartbeats():
    """The current Prefect settings with flow-run heartbeats off (a run against the ephemeral server,
    which dies with the process, needs none); derived once per base settings object (a settings
    copy takes about 35 ms, a sizeable part of a short run's overhead)."""
    global _NO_HEARTBEATS
    import prefect.context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = prefect.context.get_settings_context()
    base, derived = _NO_HEARTBEATS
    if base is not context.settings:
        derived = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        _NO_HEARTBEATS = (context.settings, derived)
    with prefect.context.SettingsContext(profile=context.profile, settings=derived):
        yield
