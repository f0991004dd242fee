"""Smoke test of the benchmark harness: `python -m benchmarks.run_all --quick` end to end.

Runs every method in its own process on Cora and two tiny CSBM graphs (about 3 minutes on the
shared 2-core machine), then checks the CSVs, plots, report and MLflow runs it leaves behind.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_run_writes_results_report_and_mlflow(shared_datasets, tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    env = {**os.environ, "DGNN_DATA_MIRROR": str(shared_datasets), "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--quick", "--out", str(out),
                           "--data-dir", str(data)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    with open(out / "peers.csv") as f:
        peers = list(csv.DictReader(f))
    cora = {r["method"]: r for r in peers if r["dataset"] == "cora" and r["group"] == "peers"}
    assert set(cora) == {"dgnn", "gcn", "sgc", "sign"}
    for method, row in cora.items():
        assert row["status"] == "ok", (method, row)
        assert 0.5 < float(row["test_acc_mean"]) <= 1.0, (method, row)
        assert 0 < float(row["time_to_best_val_mean"]) <= float(row["train_seconds_mean"])
        assert float(row["peak_rss_mb"]) > 100  # the child's own ru_maxrss, libraries included
    with open(out / "scaling.csv") as f:
        scaling = list(csv.DictReader(f))
    assert {r["dataset"] for r in scaling} == {"synthetic-csbm-2k", "synthetic-csbm-5k"}
    assert all(r["status"] == "ok" and int(r["edges"]) > 0 for r in scaling)
    with open(out / "seeds.csv") as f:
        assert len(list(csv.DictReader(f))) >= 8

    report = (out / "REPORT.md").read_text()
    for section in ("## Headline", "## Core speed", "## Scaling", "## Where DGNN loses", "Machine load caveat"):
        assert section in report
    for plot in ("accuracy_vs_time.png", "scaling_time.png", "scaling_memory.png"):
        assert (out / plot).stat().st_size > 1000

    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    experiment = mlflow.get_experiment_by_name("benchmarks")
    assert experiment is not None
    runs = mlflow.search_runs([experiment.experiment_id])
    assert len(runs) >= 1 + len(peers) + len(scaling)  # the parent plus one nested run per row
