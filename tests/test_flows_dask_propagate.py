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
from dgnn.data.store import read_meta

pytestmark = pytest.mark.slow
DGNN = str(Path(sys.executable).with_name("dgnn"))


def test_blocks_on_two_dask_workers_equal_the_single_process_stage(shared_datasets, tmp_path):
    single, on_dask = tmp_path / "single", tmp_path / "dask"
    for data in (single, on_dask):
        fetch("cora", data_dir=data, mirror=shared_datasets)
    expected = propagate_stage("cora", [0, 1, 2], single, feature_norm="row")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "DGNN_"))}
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
