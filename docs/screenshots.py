"""Screenshots of the MLflow UI for the README: an experiment's runs, one run, one module step.

    .venv/bin/python docs/screenshots.py                     # after `make run`
    .venv/bin/python docs/screenshots.py --experiment dgnn-citeseer-classify

Starts `dgnn ui` on a free port against the project's store and renders both pages with headless
Chromium (installed with apt-get when it is missing), driven over the DevTools protocol so that
the UI's first-visit state can be set before its scripts run (the assistant panel, which opens on
a first visit and would cover a third of the page, stays closed; the navigation shows model
training). Writes ``docs/img/mlflow-runs.png``, ``docs/img/mlflow-run.png`` and
``docs/img/mlflow-step-loss.png`` (the loss chart of the run's first module step), reduced to 256
colours so that each stays small.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from websockets.sync.client import connect

from adapters.mlflow import tracking
from adapters.process import settings
from adapters.prefect.server import free_port, stop_process_group, wait_healthy

IMAGES = Path(__file__).resolve().parent / "img"
WINDOW = (1440, 900)
# The UI keeps these in localStorage as "<key>_v<version>" = JSON (mlflow/server/js, useLocalStorage).
FIRST_VISIT = {"mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True, "mlflow.assistant.panelOpen_v1": False,
               "mlflow.workflowType_v1": "machine_learning", "mlflow.settings.telemetry.enabled_v1": False,
               "mlflow.telemetry.info.alert.dismissed_v1": True}
# The runs table's columns, the README's "Columns" step: the headline metrics beside the model (the
# dataset and its DVC digest are on each run's page).
HEADLINE_METRICS = ("val_acc", "test_acc", "macro_f1")


def runs_table(experiment_id: str) -> dict:
    """The experiment page's saved state (ExperimentPage, mlflow/server/js) with the headline
    metrics as columns; the other fields are the UI's own first-visit values."""
    columns = ["attributes.`Models`"] + [f"metrics.`{m}`" for m in HEADLINE_METRICS]
    state = {"searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False, "startTime": "ALL",
             "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
             "selectedColumns": columns, "columnOrder": [], "columnWidths": {}, "runsExpanded": {},
             "runsPinned": [], "runsHidden": [], "runsVisibilityMap": {}, "runsHiddenMode": "FIRST_10_RUNS",
             "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
             "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {},
             "autoRefreshEnabled": True,
             "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""}}
    return {f"MLflowLocalStorage-1.1-ExperimentPage-{json.dumps([experiment_id])}-ReactComponentState": state}


def chromium() -> str:
    """The Chromium binary, installed with apt-get first when it is missing."""
    found = shutil.which("chromium")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("chromium is not on PATH after apt-get install chromium")
    return found


def latest_run(experiment_name: str) -> tuple[str, str, str, str]:
    """(experiment id, run id, run name, id of its first child run) of the newest finished
    pipeline run (a parent run): the child run of module step FT0-m1 shows a loss curve."""
    client = tracking.client(settings.tracking_uri())
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise SystemExit(f"no experiment {experiment_name!r} in {settings.tracking_uri()}: run `make run` first")
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=200)
    parents = [r for r in runs if tracking.PARENT_TAG not in r.data.tags]
    if not parents:
        raise SystemExit(f"experiment {experiment_name!r} has no finished pipeline run")
    run = parents[0].info
    [first_step] = client.search_runs([experiment.experiment_id],
                                      f"tags.`{tracking.PARENT_TAG}` = '{run.run_id}' and tags.step = 'FT0-m1'")
    return experiment.experiment_id, run.run_id, run.run_name, first_step.info.run_id


@contextlib.contextmanager
def served(command: list[str], health_url: str):
    """``command`` in its own process group until the block ends, once ``health_url`` answers."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(health_url, 120, process)
        yield process
    finally:
        stop_process_group(process, timeout=30)


class Page:
    """One browser tab over the DevTools protocol: ``call`` sends a command and returns its result."""

    def __init__(self, socket):
        self.socket, self.ids = socket, itertools.count(1)

    def call(self, method: str, **params) -> dict:
        sent = next(self.ids)
        self.socket.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:  # events arrive in between; the answer carries the command's id
            message = json.loads(self.socket.recv())
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def shows(self, text: str, timeout: float = 60) -> None:
        """Wait until the page's text contains ``text`` (the UI fetches runs after it loads)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.call("Runtime.evaluate", expression=f"document.body.innerText.includes({json.dumps(text)})")
            if found.get("result", {}).get("value"):
                time.sleep(2)  # charts and tables finish drawing
                return
            time.sleep(0.5)
        raise TimeoutError(f"the page did not show {text!r} within {timeout:.0f}s")

    def screenshot(self, url: str, text: str, path: Path) -> Path:
        self.call("Page.navigate", url=url)
        self.shows(text)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
        return path


@contextlib.contextmanager
def browser_page(binary: str, presets: dict):
    """A headless Chromium tab (fresh profile) with the window size and ``presets`` (localStorage
    keys and their JSON values) set before any page's scripts run."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dgnn-chromium-") as profile, served(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--remote-debugging-port={port}", "about:blank"], f"http://127.0.0.1:{port}/json/version"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.load(response)["webSocketDebuggerUrl"]
        with connect(target, max_size=None, open_timeout=30) as socket:
            page = Page(socket)
            page.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1], deviceScaleFactor=1,
                      mobile=False)
            state = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(json.dumps(v))});"
                            for k, v in presets.items())
            page.call("Page.enable")
            page.call("Page.addScriptToEvaluateOnNewDocument", source=state)
            yield page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="dgnn-cora-classify")
    args = parser.parse_args(argv)
    binary = chromium()
    experiment_id, run_id, run_name, step_id = latest_run(args.experiment)
    port = free_port()
    dgnn = Path(sys.executable).with_name("dgnn")
    IMAGES.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}"
    with served([str(dgnn), "ui", "--port", str(port)], f"http://127.0.0.1:{port}/health"), \
            browser_page(binary, {**FIRST_VISIT, **runs_table(experiment_id)}) as page:
        for url, text, name in ((f"{base}/runs", run_name, "mlflow-runs.png"),
                                (f"{base}/runs/{run_id}", run_name, "mlflow-run.png"),
                                (f"{base}/runs/{step_id}/model-metrics", "loss", "mlflow-step-loss.png")):
            path = page.screenshot(url, text, IMAGES / name)
            print(f"{path} ({path.stat().st_size // 1024} KB) <- {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
