"""Whether a process still runs: how stale temporaries, trials and runs of a killed job are found,
and how a helper process (a server) is made to end with the process that started it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ``dgnn-<kind>-<pid>-<random>``: what :func:`owned_temp_dir` creates.
_OWNED_TEMP = re.compile(r"dgnn-[a-z]+-(\d+)-[^-]+")


def pid_alive(pid: int) -> bool:
    """True when ``pid`` names a running process on this host (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def owned_temp_dir(kind: str) -> tempfile.TemporaryDirectory:
    """A temporary folder ``dgnn-<kind>-<pid>-*``: the pid lets :func:`sweep_owned_temp_dirs` find
    it if this process is killed before it removes the folder."""
    return tempfile.TemporaryDirectory(prefix=f"dgnn-{kind}-{os.getpid()}-")


def sweep_owned_temp_dirs(folder: Path | None = None) -> list[Path]:
    """Remove the :func:`owned_temp_dir` folders in ``folder`` (the temp dir) whose process is gone."""
    swept = []
    for path in Path(folder or tempfile.gettempdir()).glob("dgnn-*"):
        match = _OWNED_TEMP.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and not pid_alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)  # another run may be sweeping it too
            swept.append(path)
    return swept


def end_with_owner(pid: int, group: bool = False) -> subprocess.Popen:
    """Start a watchdog that ends process ``pid`` (its process group if ``group``) once this
    process is gone, however it ended (``kill -9`` included).

    A watchdog process, not ``prctl(PR_SET_PDEATHSIG)`` in the child: that signal needs code run
    in the child before it executes (a hook Popen callers such as Prefect do not offer), and it
    fires when the *thread* that forked the child ends, not its process (``adapters.prefect.server`` starts
    the ephemeral server on a thread that ends once it answers). The watchdog runs in
    its own session, so Ctrl-C in a terminal leaves it alone; it exits when ``pid`` does.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "dgnn.processes", str(os.getpid()), str(pid), *(["--group"] if group else [])],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _watch(owner: int, pid: int, group: bool, interval: float = 0.5, grace: float = 10) -> None:
    """Wait while ``owner`` (this process's parent) and ``pid`` run; if ``pid`` outlives the owner,
    SIGTERM it (its group) and SIGKILL after ``grace`` seconds."""
    # The parent changes when the owner dies (the orphan is re-parented): no pid-reuse race.
    while os.getppid() == owner:
        if not pid_alive(pid):
            return
        time.sleep(interval)
    send = os.killpg if group else os.kill
    deadline = time.monotonic() + grace
    try:
        send(pid, signal.SIGTERM)
        while time.monotonic() < deadline:
            send(pid, 0)
            time.sleep(0.1)
        send(pid, signal.SIGKILL)
    except ProcessLookupError:  # gone
        pass


if __name__ == "__main__":  # the watchdog of end_with_owner
    _watch(int(sys.argv[1]), int(sys.argv[2]), group="--group" in sys.argv[3:])
