"""Out-of-core node tensors (dgnn.node_store, dgnn.rowfile): the same numbers as in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgnn.config import ModuleConfig, TrainConfig, load_config
from dgnn.data.stages import adjacency_folder
from dgnn.inputs import load_inputs
from dgnn.nn.filters import module_filter
from dgnn.node_store import DiskStore, node_tensor_bytes, out_of_core_for
from dgnn.rowfile import RowFile


@pytest.fixture(scope="module")
def cora(shared_datasets, tmp_path_factory):
    return load_inputs("cora", data_dir=tmp_path_factory.mktemp("data"), mapped=True)


def test_row_file_reads_writes_and_gathers_rows(tmp_path):
    data = torch.randn(1000, 7)
    rows = RowFile.create(tmp_path / "m.npy", 1000, 7)
    for start in range(0, 1000, 300):
        rows.write(start, data[start : start + 300])
    assert rows.shape == (1000, 7) and len(rows) == 1000
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "m.npy")), data)  # a plain .npy file
    assert torch.equal(rows.read(250, 760), data[250:760])
    index = torch.tensor([999, 3, 3, 500])
    assert torch.equal(torch.from_numpy(rows.mapped()[index.numpy()]), data[index])
    with pytest.raises(ValueError, match="cannot write"):
        rows.write(900, data[:200])


@pytest.mark.parametrize("module", [{"order": 3}, {"order": 3, "filter": "average", "alpha": 0.3},
                                    {"filter": "lazy", "order": 4, "alpha": 0.33},
                                    {"filter": "bank", "channels": ["x", "low2", "high2", "avg3"]}],
                         ids=["power", "average", "lazy", "bank"])
def test_propagation_through_files_equals_the_in_memory_filter(cora, tmp_path, module):
    store = DiskStore(tmp_path, adjacency_folder("cora", cora.data_dir), block_rows=500)
    spec = ModuleConfig(width=1, **module)
    x = cora.graph.x.float()
    out = store.propagate(x, spec)
    assert isinstance(out, RowFile) and out.path.parent == tmp_path.resolve()
    assert torch.equal(store.load(out), module_filter(cora.adj, x, spec))
    assert sorted(p.name for p in tmp_path.glob("rows-*.npy")) == [out.path.name]  # the hops are gone


@pytest.mark.parametrize("config", ["configs/cora-classify.yaml", "configs/cora-cluster.yaml"])
def test_a_fit_out_of_core_equals_the_fit_in_memory(cora, tmp_path, config):
    train = load_config(config).train  # levers kept, a shorter schedule: the point is the storage
    train = TrainConfig.model_validate(train.model_dump() | {"modules": [
        m.model_dump() | {"steps": 30 if train.task == "cluster" else 100} for m in train.modules]})
    in_memory = cora.trainer(train, 0, "cpu").fit()
    store = cora.disk_store(tmp_path, "cpu")
    store.block_rows = 700  # four blocks of Cora's 2708 rows
    trainer = cora.trainer(train, 0, "cpu", store=store)
    on_disk = trainer.fit()
    assert on_disk.metrics == in_memory.metrics and on_disk.best_pass == in_memory.best_pass
    assert [s.losses for s in on_disk.steps] == [s.losses for s in in_memory.steps]
    live = {t.path for t in trainer.node_tensors() if isinstance(t, RowFile)}
    assert set(tmp_path.resolve().glob("rows-*.npy")) == {p for p in live if p.parent == tmp_path.resolve()}


def test_auto_mode_goes_out_of_core_only_past_half_the_available_memory(monkeypatch):
    train = load_config("benchmarks/configs/csbm-dgnn.yaml").train
    assert node_tensor_bytes(10**7, 128, train) == 4 * 10**7 * (2 * 128 + 3 * (128 + 64) + 2 * 32)
    monkeypatch.setattr("dgnn.node_store.available_memory", lambda: 24 * 2**30)
    assert not out_of_core_for("auto", 10**6, 128, train)  # 3.6 GB
    assert out_of_core_for("auto", 10**7, 128, train)  # 36 GB
    assert out_of_core_for("on", 10, 128, train) and not out_of_core_for("off", 10**9, 128, train)
    with pytest.raises(ValueError, match="auto, on, off"):
        out_of_core_for("maybe", 10, 128, train)
