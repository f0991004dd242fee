"""What a pipeline process does when what it runs with goes away, each a real ``dgnn`` process on
Cora as a user runs it: the ephemeral Prefect server killed under ``dgnn run``, ``dgnn serve``
killed with ``kill -9`` and stopped with SIGTERM, ``dgnn ui`` killed with ``kill -9`` (SIGTERM:
test_flows_services), a damaged MLflow database, and the stores' permissions."""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from flows_conftest import TINY, wait_for as _wait_for  # tests/ is on sys.path
from adapters.process import settings

DGNN = str(Path(sys.executable).with_name("dgnn"))
MID_STEP = "Task run 'FT0-m2' - SGD step 1/"  # module 2 trains: its 1,000,000 steps take minutes
RESUME = "rerun the same command to resume (it starts a new server)"


@pytest.fixture
def project(tmp_path, shared_datasets) -> dict:
    slow = copy.deepcopy(TINY)
    slow["train"]["modules"][1]["steps"] = 1_000_000
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(slow))
    env = settings.without_tool_settings()
    env |= {"DGNN_PROJECT_DIR": str(tmp_path), "DGNN_DATA_DIR": str(tmp_path / "data"),
            "DGNN_DATA_MIRROR": str(shared_datasets), "PYTHONWARNINGS": "ignore",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"}
    return {"root": tmp_path, "env": env}


def _start(project: dict, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([DGNN, *args], cwd=project["root"], env={**project["env"], **popen.pop("env", {})},
                            text=True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, **popen)


def _run(project: dict) -> subprocess.Popen:
    """``dgnn run`` of the slow config in a session of its own (a terminal's process group)."""
    return _start(project, "run", "--dataset", "cora", "--config", str(project["root"] / "slow.yaml"), "--device",
                  "cpu", start_new_session=True)


def _runs(project: dict) -> dict[str, tuple[str, str]]:
    """MLflow run name -> (status, error tag)."""
    with sqlite3.connect(project["root"] / "mlruns" / "mlflow.db") as db:
        return {name: (status, error or "") for name, status, error in db.execute(
            "SELECT name, status, (SELECT value FROM tags WHERE tags.run_uuid = runs.run_uuid AND key = 'error') "
            "FROM runs")}


def _flow_runs(project: dict, where: str = "1") -> list[tuple[str, str]]:
    """(state type, tags) of the Prefect flow runs in the project's server database."""
    with sqlite3.connect(project["root"] / ".prefect" / "prefect.db") as db:
        return db.execute(f"SELECT state_type, tags FROM flow_run WHERE {where}").fetchall()


def _owner_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@pytest.mark.slow
def test_server_killed_under_a_run_ends_it_in_seconds_and_a_ctrl_c_never_reaches_the_server(project):
    first = _run(project)
    _wait_for(first, MID_STEP)
    server = next(p for p in psutil.Process(first.pid).children() if "uvicorn" in " ".join(p.cmdline()))
    # A terminal's Ctrl-C goes to its foreground process group: the run's, not the server's (a
    # server stopped with the run left the run retrying for a minute, "Error logging to API").
    assert os.getpgid(server.pid) == server.pid != os.getpgid(first.pid)
    server.kill()  # as the OOM killer would
    err = first.communicate(timeout=120)[1]
    assert first.returncode == 1, err[-3000:]
    assert err.splitlines()[-1] == (f"error: pipeline failed: the Prefect server (pid {server.pid}) stopped during "
                                    f"the run (killed by SIGKILL): finished steps are kept and the MLflow runs closed "
                                    f"as FAILED; {RESUME}")
    assert "Traceback" not in err and "Connection refused" not in err, err[-3000:]
    problem = f"the Prefect server (pid {server.pid}) stopped during the run (killed by SIGKILL)"
    assert _runs(project) == {"cora-slow-seed0-run1": ("FAILED", problem), "FT0-m1": ("FINISHED", ""),
                              "FT0-m2": ("FAILED", problem)}
    root = project["root"]
    for store in (root / "mlruns", root / ".dgnn_cache" / "runs", root / ".prefect"):
        assert _owner_only(store), oct(store.stat().st_mode)
    assert stat.S_IMODE((root / "mlruns" / "mlflow.db").stat().st_mode) == 0o600


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # an orphan's end is reaped by whoever adopts it
    except psutil.NoSuchProcess:
        return False


def _spawned_flow_run(serve: subprocess.Popen) -> psutil.Process:
    return next(p for p in psutil.Process(serve.pid).children() if "spawn_main" in " ".join(p.cmdline()))


@pytest.mark.slow
def test_serve_killed_takes_its_flow_run_along_and_sigterm_stops_it_cleanly(project, monkeypatch):
    """kill -9 of `dgnn serve`: its flow-run process ends too (no run finishes against a dead
    API), and the next serve closes what it left; SIGTERM: the flow run in progress is stopped and
    closed, no run is left PENDING or SCHEDULED, exit 143."""
    from adapters.prefect.server import prefect_server

    args = ("serve", "--dataset", "cora", "--config", str(project["root"] / "slow.yaml"), "--interval", "5",
            "--device", "cpu")
    monkeypatch.setenv("PREFECT_HOME", str(project["root"] / ".prefect"))
    with prefect_server(None, scheduler_loop_seconds=2) as api:  # one server for both serves: one boot less
        _serve_killed_then_stopped(project, args, {"PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2"})


def _serve_killed_then_stopped(project: dict, args: tuple, env: dict) -> None:
    fast_poll = {"env": env}
    killed = _start(project, *args, **fast_poll)
    _wait_for(killed, MID_STEP)
    flow_run = _spawned_flow_run(killed)
    killed.kill()
    err = killed.communicate(timeout=120)[1]  # the flow-run process writes to the same stderr
    assert not _running(flow_run)
    ended = f"dgnn serve (pid {killed.pid}) ended during the run"
    assert f"error: flow run cora-slow-seed0-run1 failed: {ended}: finished steps are kept" in err, err[-3000:]
    assert _runs(project) == {"cora-slow-seed0-run1": ("FAILED", ended), "FT0-m1": ("FINISHED", ""),
                              "FT0-m2": ("FAILED", ended)}

    stopped = _start(project, *args, **fast_poll)
    _wait_for(stopped, "serving deployment")
    left = _flow_runs(project, f"tags LIKE '%\"dgnn.pid:{killed.pid}\"%'")
    assert [state for state, _ in left] == ["CRASHED"], left  # and its scheduled runs deleted
    _wait_for(stopped, MID_STEP)
    stopped.send_signal(signal.SIGTERM)
    err = stopped.communicate(timeout=180)[1]
    assert stopped.returncode == 143, err[-3000:]
    assert err.splitlines()[-1] == ("interrupted by SIGTERM: the flow run in progress was stopped (its finished steps "
                                    "are kept) and the scheduled runs removed; rerun the same command to serve again")
    assert "never awaited" not in err and "Traceback" not in err, err[-3000:]
    assert not _flow_runs(project, "state_type IN ('SCHEDULED', 'PENDING', 'RUNNING')")
    killed_runs = [status for name, (status, _) in _runs(project).items() if status == "KILLED"]
    assert killed_runs == ["KILLED", "KILLED"]  # the second run's parent and FT0-m2


def test_ui_killed_takes_its_mlflow_server_along(project):
    """kill -9 of `dgnn ui` ends the MLflow server it started too (SIGTERM: test_flows_services)."""
    from adapters.prefect.server import free_port

    ui = _start(project, "ui", "--port", str(free_port()))
    _wait_for(ui, "MLflow UI for ")  # the server is starting
    server = [p for p in psutil.Process(ui.pid).children(recursive=True) if "dgnn.processes" not in p.cmdline()]
    assert server
    ui.kill()
    ui.wait()
    assert not psutil.wait_procs(server, timeout=60)[1]


def _damage(db: Path) -> Path:
    db.parent.mkdir()
    db.write_bytes(b"this is no sqlite database" * 100)
    return db


def _damaged(db: Path, command: str) -> str:
    return (f"error: {command} failed: {db} is damaged (file is not a database): move it aside (mv {db} "
            f"{db}.damaged) and rerun to start a new MLflow store, or restore it from a backup\n")


def test_a_damaged_mlflow_database_fails_at_once_naming_it(project, monkeypatch, capsys):
    db = _damage(project["root"] / "mlruns" / "mlflow.db")
    proc = _start(project, "run", "--dataset", "cora", "--config", str(project["root"] / "slow.yaml"))
    err = proc.communicate(timeout=120)[1]
    assert (proc.returncode, err) == (1, _damaged(db, "run"))
    assert not (project["root"] / ".prefect" / "prefect.db").exists()  # no server was started
    from cli.main import main

    for key in ("DGNN_PROJECT_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(key, project["env"][key])
    capsys.readouterr()
    assert main(["ui"]) == 1 and capsys.readouterr().err == _damaged(db, "ui")


def test_stores_are_created_owner_only(project, monkeypatch):
    from adapters.process import stores

    root = project["root"]
    for key in ("DGNN_PROJECT_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(key, project["env"][key])
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.delenv("DGNN_RUNS_DIR", raising=False)
    stores.prepare()
    for folder in (root / "mlruns", root / ".dgnn_cache", root / ".dgnn_cache" / "runs", root / ".prefect"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((root / "mlruns" / "mlflow.db").stat().st_mode) == 0o600
    monkeypatch.setenv("DGNN_STORE_MODE", "750")
    monkeypatch.setenv("DGNN_RUNS_DIR", str(root / "shared" / "runs"))
    stores.prepare()
    assert stat.S_IMODE((root / "shared" / "runs").stat().st_mode) == 0o750
