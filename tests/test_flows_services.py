"""The long-running pipeline commands, each in its own process as a user runs them:
``dgnn sweep`` on 2 Dask workers, ``dgnn ui`` (an MLflow server answering REST searches) and
``dgnn serve`` (a schedule that really fires). Marked slow; they still run in CI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml

from flows_conftest import TINY  # tests/ is on sys.path
from adapters.prefect.server import stop_process_group
from adapters.process import settings

pytestmark = pytest.mark.slow
DGNN = str(Path(sys.executable).with_name("dgnn"))


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_datasets):
    root = tmp_path_factory.mktemp("flows_services")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = settings.without_tool_settings()
    env |= {
        "DGNN_PROJECT_DIR": str(root),
        "DGNN_DATA_DIR": str(root / "data"),
        "DGNN_DATA_MIRROR": str(shared_datasets),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "PYTHONWARNINGS": "ignore",
    }
    return {"root": root, "env": env, "uri": env["MLFLOW_TRACKING_URI"]}


def _client(project):
    from adapters.mlflow import tracking

    return tracking.client(project["uri"])


@pytest.fixture(scope="module")
def sweep(project):
    start = time.perf_counter()
    out = subprocess.run([DGNN, "sweep", "--datasets", "cora,citeseer", "--seeds", "0-1", "--config",
                          str(project["root"] / "tiny.yaml"), "--device", "cpu", "--json"],
                         env=project["env"], cwd=project["root"], capture_output=True, text=True, timeout=500)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout)
    result["wall"] = time.perf_counter() - start
    result["stderr"] = out.stderr
    return result


def test_sweep_runs_on_two_dask_workers_all_tracked(project, sweep):
    client = _client(project)
    assert len(sweep["runs"]) == 4 and set(sweep["datasets"]) == {"cora", "citeseer"}
    pids = set()
    for run in sweep["runs"]:
        stored = client.get_run(run["mlflow_run_id"])
        assert stored.info.status == "FINISHED"
        assert stored.data.tags["sweep_id"] == sweep["sweep_id"]
        pids.add(stored.data.tags["dgnn.pid"])
        children = client.search_runs([stored.info.experiment_id],
                                      f"tags.mlflow.parentRunId = '{stored.info.run_id}'")
        assert len(children) == 6 and all(c.info.status == "FINISHED" for c in children)
    assert len(pids) == 2, "the runs should have been spread over the 2 worker processes"
    print(f"sweep of 4 runs: {sweep['wall']:.1f}s")


def test_sweep_output_names_its_runs_without_dask_chatter(sweep):
    """The sweep's flow run is named, each worker's task line names its pipeline run (dataset,
    config, seed, sweep), dask.distributed says nothing at INFO and kills no worker at the end."""
    err, sweep_id = sweep["stderr"], sweep["sweep_id"]
    assert f"Flow run 'sweep{sweep_id}-cora+citeseer-seeds0-1' - Beginning flow run" in err
    for dataset in ("cora", "citeseer"):
        for seed in (0, 1):
            assert f"| {dataset}-tiny-seed{seed}-sweep{sweep_id} | Task run 'FT1-m2' - done: 20 SGD steps" in err
    assert "INFO    | distributed." not in err and " - distributed." not in err
    assert "still alive" not in err and "killing" not in err


def test_mlflow_server_answers_rest_search(project, sweep):
    from adapters.prefect.server import free_port, wait_healthy

    port = free_port()
    server = subprocess.Popen([DGNN, "ui", "--port", str(port)], env=project["env"], cwd=project["root"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", 120, server)
        client = _client(project)
        ids = [client.get_experiment_by_name(f"dgnn-{d}-classify").experiment_id for d in ("cora", "citeseer")]
        body = json.dumps({"experiment_ids": ids, "filter": f"tags.sweep_id = '{sweep['sweep_id']}'",
                           "max_results": 100}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            found = json.loads(response.read())["runs"]
        assert {r["info"]["run_id"] for r in found} == {r["mlflow_run_id"] for r in sweep["runs"]}
        mlflow_server = psutil.Process(server.pid).children(recursive=True)
        server.send_signal(signal.SIGTERM)  # SIGTERM stops the server it started, and says so
        assert server.wait(timeout=60) == 143
        assert not psutil.wait_procs(mlflow_server, timeout=60)[1]
    finally:
        stop_process_group(server, timeout=40)


def test_serve_schedule_fires(project):
    client = _client(project)
    log = open(project["root"] / "serve.log", "w")
    server = subprocess.Popen([DGNN, "serve", "--dataset", "cora", "--config", str(project["root"] / "tiny.yaml"),
                               "--interval", "5", "--seed", "7", "--device", "cpu", "--prefect-port", "0"],
                              env=project["env"], cwd=project["root"], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        finished = []
        while time.monotonic() < deadline and not finished:
            time.sleep(3)
            assert server.poll() is None, (project["root"] / "serve.log").read_text()[-3000:]
            experiment = client.get_experiment_by_name("dgnn-cora-classify")
            if experiment is not None:
                finished = client.search_runs([experiment.experiment_id],
                                              "tags.seed = '7' and attributes.status = 'FINISHED'")
        assert finished, (project["root"] / "serve.log").read_text()[-3000:]
        assert finished[0].data.tags["prefect.flow_run_id"]
        _trigger_as_printed(project)
    finally:
        stop_process_group(server, timeout=40)
        log.close()


def _trigger_as_printed(project) -> None:
    """The command serve prints starts a run from a new shell, which knows no Prefect server."""
    said = (project["root"] / "serve.log").read_text()
    command = next(line.split("from any shell: ", 1)[1] for line in said.splitlines() if "from any shell: " in line)
    new_shell = settings.without_tool_settings(project["env"], ("PREFECT_",))
    new_shell["PREFECT_HOME"] = str(project["root"] / "new-shell-prefect")
    triggered = subprocess.run(["bash", "-c", command], env=new_shell, cwd=project["root"], capture_output=True,
                               text=True, timeout=180)
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    assert "Created flow run" in triggered.stdout and "Traceback" not in triggered.stderr, triggered.stdout
