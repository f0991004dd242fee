"""Shared constants and set-up of the flows tests (a plain module: tests/ is on sys.path)."""

import os
import signal
from contextlib import contextmanager

import yaml

# A tiny Cora config: 2 modules, one backward round, 20 SGD steps per module step (6 steps).
TINY = {
    "dataset": "cora",
    "train": {
        "task": "classify", "feature_norm": "row", "eta": 100, "bp_count": 1, "keep_own_loss": True,
        "modules": [
            {"width": 32, "order": 2, "lr": 0.01, "steps": 20, "batch_size": 140, "weight_decay": 5e-4,
             "dropout": 0.5, "input_dropout": 0.5},
            {"width": 16, "order": 2, "lr": 0.01, "steps": 20, "batch_size": 140, "weight_decay": 5e-4,
             "dropout": 0.5},
        ],
    },
}


def as_in_a_terminal() -> None:
    """``preexec_fn`` of a child that a test interrupts: SIGINT at its default, as in a terminal.
    A harness started as a background job of a script (``make test &``) hands its children SIGINT
    ignored, and Python keeps it ignored, so a Ctrl-C test would wait forever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def pipeline_project(root, shared_datasets):
    """A project folder with its own data, checkpoints, MLflow store and Prefect result storage, and
    a Prefect test server, for the flows run in this process; yields the root, the tiny config's
    path and the tracking URI. The environment is restored afterwards."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    values = {
        "DGNN_PROJECT_DIR": str(root),
        "DGNN_DATA_DIR": str(root / "data"),
        "DGNN_DATA_MIRROR": str(shared_datasets),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "DGNN_RUNS_DIR": str(root / ".dgnn_cache" / "runs"),
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    try:
        with prefect_test_harness(server_startup_timeout=90):
            with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(root / ".prefect" / "results")}):
                yield {"root": root, "config": config, "uri": values["MLFLOW_TRACKING_URI"]}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_for(proc, marker: str) -> str:
    """Read a process's stderr up to the line containing ``marker`` (an event, not a time);
    returns what was read, or fails with the tail of it when the process ends first."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    proc.wait()
    raise AssertionError(f"{marker!r} never appeared (exit {proc.returncode}):\n{''.join(seen)[-3000:]}")
