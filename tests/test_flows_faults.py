"""Faults around a pipeline run: Ctrl-C, SIGTERM and ``kill -9`` (real ``dgnn run`` processes on
Cora), an identical run started while one runs, and files planted in a run folder."""

from __future__ import annotations

import copy
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from flows_conftest import TINY, as_in_a_terminal, wait_for as _wait_for  # tests/ is on sys.path

DGNN = Path(sys.executable).with_name("dgnn")
STEP_DONE = "Task run 'FT0-m1' - Finished"  # Prefect's log line once the first module step is saved
# Module 2 training (its first SGD step is logged): a signal here lands mid-step, not while Prefect
# creates the task run (there, Prefect 3's own crash handler prints "Task run is not set").
MID_STEP = "Task run 'FT0-m2' - SGD step 1/"


# Module 2's SGD steps in the slow config: at well under a millisecond each (a 16-wide module),
# 30,000 steps could end before a signal sent after a second process's start; this many cannot.
SLOW_STEPS = 1_000_000


def _project(root: Path, shared_datasets: Path) -> dict:
    """A project folder with a config whose module 2 step takes many minutes (module 1's is quick),
    to signal mid-run; returns the env of its commands."""
    slow = copy.deepcopy(TINY)
    slow["train"]["modules"][1]["steps"] = SLOW_STEPS
    root.mkdir(parents=True, exist_ok=True)
    (root / "slow.yaml").write_text(yaml.safe_dump(slow))
    env = {**os.environ, "DGNN_PROJECT_DIR": str(root), "DGNN_DATA_DIR": str(root / "data"),
           "DGNN_DATA_MIRROR": str(shared_datasets), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "DGNN_RUNS_DIR"):
        env.pop(name, None)
    return env


@pytest.fixture
def project(tmp_path, shared_datasets) -> dict:
    """A project of this test's own: its run folder, MLflow store and Prefect homes start empty, so
    no test resumes (or is refused by) what another one left."""
    return {"root": tmp_path, "env": _project(tmp_path, shared_datasets)}


def _start(project: dict, home: str) -> subprocess.Popen:
    """``dgnn run`` of the slow config, with its own Prefect home (its own ephemeral server)."""
    env = {**project["env"], "PREFECT_HOME": str(project["root"] / home)}
    return subprocess.Popen([str(DGNN), "run", "--dataset", "cora", "--config", str(project["root"] / "slow.yaml"),
                             "--device", "cpu"], cwd=project["root"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal)


def _stop(proc: subprocess.Popen, signum: int) -> tuple[int, str]:
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired as late:  # say where it was, then end it
        tree = [f"{c.pid} {c.name()} {c.status()}" for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.kill()
        tail = (late.stderr or b"").decode(errors="replace") if isinstance(late.stderr, bytes) else (late.stderr or "")
        raise AssertionError(f"still running 180 s after {signal.Signals(signum).name}; children {tree}; "
                             f"stderr tail:\n{tail[-4000:]}") from None
    return proc.returncode, err


def _assert_interrupted(code: int, err: str, signum: int) -> None:
    assert code == 128 + signum, err[-3000:]
    assert "Traceback" not in err and "pipeline failed" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert lines == [f"interrupted by {signal.Signals(signum).name}: finished steps are kept, the MLflow runs "
                     "closed as KILLED; rerun the same command to resume"], err[-3000:]


def _runs(project: dict) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(project["env"]["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("dgnn-cora-classify")
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _listing(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.mark.slow
def test_identical_run_is_refused_while_one_runs_then_ctrl_c_exits_130(project):
    first = _start(project, ".prefect-a")
    _wait_for(first, MID_STEP)
    run_dir = next((project["root"] / ".dgnn_cache" / "runs").iterdir())
    before = _listing(run_dir)
    second = subprocess.run([str(DGNN), "run", "--dataset", "cora", "--config", str(project["root"] / "slow.yaml"),
                             "--device", "cpu"], cwd=project["root"], text=True, capture_output=True, timeout=300,
                            env={**project["env"], "PREFECT_HOME": str(project["root"] / ".prefect-b")})
    assert second.returncode == 1, second.stderr[-3000:]
    assert f"an identical run (same dataset, config, seeds and data) is already running in process {first.pid}" \
        in second.stderr
    assert first.poll() is None, "the first run ended before the second one tried"
    after = _listing(run_dir)
    assert {k: after[k] for k in before if k.endswith(".pt")} == \
        {k: v for k, v in before.items() if k.endswith(".pt")}  # the refused run changed no checkpoint

    _assert_interrupted(*_stop(first, signal.SIGINT), signal.SIGINT)
    runs = _runs(project)
    killed = [r for r in runs if r.data.tags.get("interrupted") == "SIGINT"]
    assert {r.info.status for r in killed} == {"KILLED"}
    assert {r.info.run_name for r in killed} >= {"cora-slow-seed0-run1"}  # parent (config file name), step
    assert not [r for r in runs if r.info.status == "RUNNING"]
    refused = [r for r in runs if "already running" in r.data.tags.get("error", "")]
    assert len(refused) == 1 and refused[0].info.status == "FAILED"
    assert (run_dir / "00-FT0-m1.pt").exists()  # kept for the rerun to resume


@pytest.mark.slow
def test_sigterm_mid_run_exits_143(project):
    proc = _start(project, ".prefect-a")
    _wait_for(proc, MID_STEP)
    _assert_interrupted(*_stop(proc, signal.SIGTERM), signal.SIGTERM)
    killed = [r for r in _runs(project) if r.data.tags.get("interrupted") == "SIGTERM"]
    assert killed and {r.info.status for r in killed} == {"KILLED"}


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _flow_run_states(project: dict, home: str, pid: int) -> dict[str, list[str]]:
    """The state types of the flow and task runs that process ``pid`` tagged, read from the database."""
    with sqlite3.connect(project["root"] / home / "prefect.db") as db:
        return {table: sorted(state for (state,) in db.execute(
            f"SELECT state_type FROM {table} WHERE tags LIKE ?", (f'%"dgnn.pid:{pid}"%',)))
            for table in ("flow_run", "task_run")}


@pytest.mark.slow
def test_kill_9_ends_the_server_and_the_next_run_closes_what_was_left(project):
    proc = _start(project, ".prefect-a")
    _wait_for(proc, STEP_DONE)
    spawned = psutil.Process(proc.pid).children(recursive=True)  # the server and its watchdog
    ports = {c.laddr.port for p in spawned for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    assert ports, [p.cmdline() for p in spawned]
    proc.kill()
    proc.communicate(timeout=60)  # the server shares its stderr: this also waits for the server
    deadline = time.monotonic() + 20
    while any(_running(p) for p in spawned) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p.cmdline() for p in spawned if _running(p)]
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert _flow_run_states(project, ".prefect-a", proc.pid)["flow_run"] == ["RUNNING"]

    leftover = Path(tempfile.gettempdir()) / f"dgnn-ckpt-{proc.pid}-planted"  # as if killed while copying
    leftover.mkdir()
    (project["root"] / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    rerun = subprocess.run([str(DGNN), "run", "--dataset", "cora", "--config", str(project["root"] / "tiny.yaml"),
                            "--device", "cpu"], cwd=project["root"], text=True, capture_output=True, timeout=300,
                           env={**project["env"], "PREFECT_HOME": str(project["root"] / ".prefect-a")})
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    states = _flow_run_states(project, ".prefect-a", proc.pid)
    assert states["flow_run"] == ["CRASHED"] and "RUNNING" not in states["task_run"], states
    assert not leftover.exists()


def test_sigterm_while_the_server_starts_exits_143(project):
    proc = _start(project, ".prefect")
    _wait_for(proc, "Creating initial MLflow database tables")  # a new store: the server still boots
    _assert_interrupted(*_stop(proc, signal.SIGTERM), signal.SIGTERM)


# -- files planted in a run folder ------------------------------------------------------------------


class _Planted:
    """Unpickling it creates the folder ``marker``: proof that a file was unpickled (code ran)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _trained(tmp_path: Path):
    from dgnn.config import TrainConfig
    from dgnn.data.synthetic import csbm
    from dgnn.trainer import DecoupledTrainer
    from dgnn.schedule import schedule
    from dgnn.checkpoint import save_checkpoint

    graph = csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0)
    config = TrainConfig.model_validate({**TINY["train"], "feature_norm": "none"})
    trainer = DecoupledTrainer(graph, config, seed=0)
    for step in schedule(2, 1)[:2]:  # FT0-m1, FT0-m2: a finished pass, so a best state too
        trainer.run_step(step)
    trainer.end_forward_pass(0)
    save_checkpoint(trainer, tmp_path / "01-FT0-m2.pt")
    return graph, config, trainer


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path):
    from dgnn.trainer import DecoupledTrainer
    from dgnn.checkpoint import load_checkpoint

    graph, config, trainer = _trained(tmp_path)
    for path in tmp_path.glob("*.pt"):
        torch.load(path, weights_only=True)  # tensors and plain containers only
    resumed = DecoupledTrainer(graph, config, seed=0)
    load_checkpoint(resumed, tmp_path / "01-FT0-m2.pt")
    assert torch.equal(resumed.best["output"], trainer.best["output"])
    assert resumed.passes == trainer.passes


def test_planted_pickle_in_a_checkpoint_or_payload_is_refused_not_run(tmp_path):
    from dgnn.trainer import DecoupledTrainer
    from dgnn.checkpoint import CheckpointError, load_checkpoint, load_tensors

    graph, config, _ = _trained(tmp_path)
    marker = tmp_path / "unpickled"
    checkpoint = tmp_path / "01-FT0-m2.pt"
    torch.save({**torch.load(checkpoint, weights_only=True), "passes": _Planted(marker)}, checkpoint)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(checkpoint))}: refusing to load it: .*; "
                                              rf"delete {re.escape(str(tmp_path))} and rerun"):
        load_checkpoint(DecoupledTrainer(graph, config, seed=0), checkpoint)
    payload = tmp_path / "model-payload.pt"
    torch.save({"format": 1, "modules": [_Planted(marker)]}, payload)
    with pytest.raises(CheckpointError, match="refusing to load it"):
        load_tensors(payload)
    assert not marker.exists()
