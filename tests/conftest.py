"""Shared fixtures: the real dataset mirror, a throw-away data folder, and Cora as user files."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.run_setup import apply_defaults

# The stores of this test process (each pytest-xdist worker is one) live in a scratch folder, set
# before any test module imports Prefect or MLflow; the project's defaults would put them in the
# checkout, where two workers (or a developer's own runs) would share one Prefect database. Tests that need other
# stores set their own.
SCRATCH = Path(tempfile.mkdtemp(prefix="dgnn-tests-"))
os.environ.update({
    "PREFECT_HOME": str(SCRATCH / ".prefect"),
    "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(SCRATCH / ".prefect" / "results"),
    "MLFLOW_TRACKING_URI": f"sqlite:///{SCRATCH / 'mlruns' / 'mlflow.db'}",
    "DGNN_RUNS_DIR": str(SCRATCH / ".dgnn_cache" / "runs"),
})
apply_defaults()  # the rest of the project's defaults, as the dgnn command applies them


@pytest.fixture(scope="session", autouse=True)
def _remove_scratch():
    yield
    shutil.rmtree(SCRATCH, ignore_errors=True)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test, as the dgnn command picks for graphs of this size: the two
    workers share two cores, and two threads each on a loaded core made a one-minute Cora fit take
    over five (threads spinning at barriers while their partner waits for the core). The count is
    process-wide: restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The dataset mirror (``$DGNN_DATA_MIRROR`` or ``../shared/datasets`` beside the repository)."""
    default = Path(__file__).parents[1].parent / "shared" / "datasets"
    path = Path(os.environ.get("DGNN_DATA_MIRROR") or default)
    if not (path / "SHA256SUMS").is_file():
        pytest.skip(f"dataset mirror not found at {path}")
    return path


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch) -> Path:
    """An empty ``data/`` folder, also set as ``$DGNN_DATA_DIR``; deleted afterwards (graphs are large)."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("DGNN_DATA_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def cora_user_files(shared_datasets, tmp_path_factory) -> dict:
    """Cora written as a user would: shuffled string ids, 32 feature columns, label, split.

    Returns the paths (``edges``, ``nodes``; ``named_nodes``: the same nodes with each label
    written as a name, ``topic-<k>``) and the original ``graph`` and ``ids``. Tests must copy the
    files before changing them.
    """
    from dgnn.data.planetoid import read_planetoid

    graph = read_planetoid(shared_datasets / "planetoid" / "Cora" / "raw", "cora")
    rng = np.random.default_rng(0)
    ids = np.array([f"paper-{k}" for k in rng.permutation(graph.num_nodes)])
    nodes = pd.DataFrame(graph.x[:, :32].numpy(), columns=[f"f{i}" for i in range(32)])
    nodes.insert(0, "node_id", ids)
    y = graph.y.numpy()
    nodes["label"] = pd.array(np.where(y >= 0, y, None), dtype="Int64")
    split = np.select([graph.train_mask, graph.val_mask, graph.test_mask], ["train", "val", "test"], "")
    nodes["split"] = pd.Series(split).replace("", None)
    src, dst = graph.edge_index.numpy()
    one_way = src < dst
    edges = pd.DataFrame({"src": ids[src[one_way]], "dst": ids[dst[one_way]]})
    folder = tmp_path_factory.mktemp("cora_user")
    edges.to_csv(folder / "edges.csv", index=False)
    nodes.to_csv(folder / "nodes.csv", index=False)
    nodes.assign(label=[None if k < 0 else f"topic-{k}" for k in y]).to_csv(folder / "named.csv", index=False)
    return {"edges": folder / "edges.csv", "nodes": folder / "nodes.csv", "named_nodes": folder / "named.csv",
            "graph": graph, "ids": ids}
