"""``dgnn propagate ... --dask-workers 2``: the row blocks of Â^k X as Prefect tasks on a local
2-worker Dask cluster write the same bytes as the single-process stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgnn.data import fetch, propagate_stage
from dgnn.data.stage_folders import read_meta
from adapters.process import settings

pytestmark = pytest.mark.slow
DGNN = str(Path(sys.executable).with_name("dgnn"))


def test_blocks_on_two_dask_workers_equal_the_single_process_stage(shared_datasets, tmp_path):
    single, on_dask = tmp_path / "single", tmp_path / "dask"
    for data in (single, on_dask):
        fetch("cora", data_dir=data, mirror=shared_datasets)
    expected = propagate_stage("cora", [0, 1, 2], single, feature_norm="row")
    env = settings.without_tool_settings()
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([DGNN, "propagate", "cora", "--orders", "0", "1", "2", "--feature-norm", "row",
                          "--block-rows", "500", "--dask-workers", "2", "--data-dir", str(on_dask), "--json"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    folder = Path(json.loads(out.stdout)["path"])
    assert folder == (on_dask / "cora" / "propagated").resolve()
    for k in (0, 1, 2):
        assert (folder / f"p{k}.npy").read_bytes() == (expected / f"p{k}.npy").read_bytes()
    assert read_meta(folder)["content_hash"] == read_meta(expected)["content_hash"]
    done = [line for line in out.stderr.splitlines() if "Task run 'rows-" in line and "Completed()" in line]
    assert len(done) == 12  # 2708 rows in blocks of 500: 6 tasks per hop, 2 hops
    assert out.stderr.count("6 row blocks ran on 2 worker process(es)") == 2  # one line a hop


def test_pipeline_on_dask_out_of_core_gets_the_in_memory_numbers(shared_datasets, tmp_path):
    """`dgnn run --dask-workers 2 --out-of-core on`: the propagate stage and the deeper modules'
    re-propagations run as blocks on the workers, from and into files, and the run's metrics are
    those of an in-memory trainer in this process."""
    import yaml

    from dgnn.config import TrainConfig
    from dgnn.inputs import load_inputs
    from flows_conftest import TINY

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = settings.without_tool_settings()
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "DGNN_PROJECT_DIR": str(tmp_path),
            "DGNN_DATA_DIR": str(tmp_path / "data"), "DGNN_RUNS_DIR": str(tmp_path / "runs"),
            "DGNN_DATA_MIRROR": str(shared_datasets), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([DGNN, "run", "--dataset", "cora", "--config", str(config), "--out-of-core", "on",
                          "--dask-workers", "2", "--device", "cpu", "--json"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout)
    # the stage's two hops, then module 2's re-propagation (two hops) after each forward pass
    assert out.stderr.count("1 row block(s) ran on 1 Dask worker process(es)") == 2 + 2 * 2
    inputs = load_inputs("cora", data_dir=tmp_path / "data")
    fit = inputs.trainer(TrainConfig.model_validate(TINY["train"]), 0, "cpu").fit()
    for key in ("test_acc", "val_acc", "macro_f1"):
        assert summary[f"{key}_mean"] == fit.metrics[key]
