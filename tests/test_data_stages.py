"""Normalise / propagate stages: stored format, hashes, blocked == in-memory, staleness, atomicity.

The stage's propagation has a fixed summation order (the same bits on every CPU); the in-memory
path (MKL) agrees to float rounding, hence ``close`` rather than equality between the two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dgnn.data import (
    DataError,
    content_hash,
    fetch,
    load_adjacency,
    load_graph,
    load_propagated,
    normalise_stage,
    propagate_stage,
    stored_propagated,
    verify,
)
from dgnn.data.stages import run_blocks
from dgnn.data.stage_folders import atomic_folder
from dgnn.propagation import normalise_features, normalised_adjacency, propagate, propagate_block, row_blocks


def close(stored: torch.Tensor, in_memory: torch.Tensor) -> None:
    torch.testing.assert_close(stored, in_memory, rtol=1e-5, atol=1e-7)


@pytest.fixture
def cora(shared_datasets, tmp_data_dir):
    fetch("cora", mirror=shared_datasets)
    return load_graph("cora")


def test_normalise_stage_writes_csr_with_hashes(cora, tmp_data_dir):
    folder = normalise_stage("cora")
    assert folder == tmp_data_dir / "cora" / "adj"
    meta = json.loads((folder / "meta.json").read_text())
    assert sorted(meta["files"]) == ["indices.npy", "indptr.npy", "values.npy"]
    assert meta["content_hash"] == content_hash(folder)
    assert meta["inputs"] == {"graph": cora.meta["content_hash"]}
    assert np.load(folder / "values.npy").dtype == np.float32
    expected = normalised_adjacency(cora.edge_index, cora.num_nodes)
    adj = load_adjacency("cora")
    assert torch.equal(adj.to_dense(), expected.to_dense())


def test_propagate_stage_equals_in_memory_path(cora, tmp_data_dir):
    adj = normalised_adjacency(cora.edge_index, cora.num_nodes)
    whole = propagate_stage("cora", [0, 2, 1])
    whole_hash = content_hash(whole)
    for k in (0, 1, 2):
        close(load_propagated("cora", k), propagate(adj, cora.x, k))
    blocked = propagate_stage("cora", [0, 1, 2], block_rows=97)
    assert content_hash(blocked) == whole_hash  # byte-identical files
    assert json.loads((blocked / "meta.json").read_text())["orders"] == [0, 1, 2]
    backwards = propagate_stage("cora", [0, 1, 2], block_rows=97,
                                map_blocks=lambda kernel, blocks: run_blocks(kernel, blocks[::-1]))
    assert content_hash(backwards) == whole_hash  # blocks in any order, as on Dask workers


def test_row_feature_norm_equals_what_the_trainer_computes(cora, tmp_data_dir):
    adj = normalised_adjacency(cora.edge_index, cora.num_nodes)
    x = normalise_features(cora.x.float(), "row")
    folder = propagate_stage("cora", [0, 2], feature_norm="row", block_rows=500)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["feature_norm"] == "row" and meta["orders"] == [0, 2]
    assert sorted(p.name for p in folder.glob("p*.npy")) == ["p0.npy", "p2.npy"]
    for k in (0, 2):
        close(load_propagated("cora", k, feature_norm="row"), propagate(adj, x, k))
    assert content_hash(propagate_stage("cora", [2, 0], feature_norm="row")) == content_hash(folder)
    assert not (folder / "p1.npy").exists()


def test_training_inputs_read_the_stage_output_and_never_rewrite_it(cora, tmp_data_dir):
    from dgnn.config import TrainConfig
    from dgnn.inputs import load_inputs

    folder = propagate_stage("cora", [1, 2], feature_norm="row")
    before = content_hash(folder)
    assert torch.equal(stored_propagated("cora", 2, feature_norm="row"), load_propagated("cora", 2, feature_norm="row"))
    assert stored_propagated("cora", 3, feature_norm="row") is None
    assert stored_propagated("cora", 2, feature_norm="none") is None

    def config(order, **module):
        return TrainConfig(task="classify", feature_norm="row", modules=[{"width": 8, "order": order, **module}])

    from dgnn.nn.filters import graph_filter

    adj = load_adjacency("cora")
    x = normalise_features(cora.x.float(), "row")
    inputs = load_inputs("cora")
    assert torch.equal(inputs.first_input(config(2)), stored_propagated("cora", 2, feature_norm="row"))
    assert torch.equal(inputs.first_input(config(3)), propagate(adj, x, 3))  # in memory
    averaged = inputs.first_input(config(4, filter="average", alpha=0.1))
    assert torch.equal(averaged, graph_filter(adj, x, 4, "average", 0.1))
    assert inputs.first_input(config(4, filter="average", alpha=0.1)) is averaged  # computed once
    assert content_hash(folder) == before and sorted(p.name for p in folder.glob("p*.npy")) == ["p1.npy", "p2.npy"]


def test_load_propagated_recomputes_for_another_feature_norm(cora, tmp_data_dir):
    propagate_stage("cora", [1, 2], feature_norm="row")
    raw = load_propagated("cora", 2)  # stored folder holds "row": recomputed without normalisation
    adj = normalised_adjacency(cora.edge_index, cora.num_nodes)
    close(raw, propagate(adj, cora.x, 2))
    meta = json.loads((tmp_data_dir / "cora" / "propagated" / "meta.json").read_text())
    assert meta["feature_norm"] == "none" and meta["orders"] == [2]
    with pytest.raises(DataError, match="unknown feature normalisation"):
        propagate_stage("cora", [1], feature_norm="l2")


def blockwise(adj: torch.Tensor, h: torch.Tensor, block_rows: int) -> torch.Tensor:
    """One hop, block by block, each block given only its rows of ``adj``."""
    crow, col, values = adj.crow_indices(), adj.col_indices(), adj.values()
    return torch.cat([propagate_block(crow[a : b + 1], col[crow[a] : crow[b]], values[crow[a] : crow[b]], h)
                      for a, b in row_blocks(len(h), block_rows)])


def test_propagate_block_splits_give_the_same_bits():
    gen = torch.Generator().manual_seed(0)
    edges = torch.randint(0, 500, (2, 3000), generator=gen)
    edges = torch.cat([edges, edges.flip(0)], 1)
    edges = torch.unique(edges[:, edges[0] != edges[1]], dim=1)
    adj = normalised_adjacency(edges, 500)
    h = torch.randn(500, 16, generator=gen)
    whole = blockwise(adj, h, 500)
    close(whole, propagate(adj, h, 1))
    for block_rows in (1, 64, 1000):
        assert torch.equal(blockwise(adj, h, block_rows), whole)


def test_propagate_block_sums_each_row_in_column_order():
    """The definition the stage's DVC hash rests on: float32 products, added left to right."""
    gen = torch.Generator().manual_seed(1)
    edges = torch.randint(0, 40, (2, 200), generator=gen)
    edges = torch.unique(torch.cat([edges, edges.flip(0)], 1), dim=1)
    adj = normalised_adjacency(edges[:, edges[0] != edges[1]], 40)
    h = torch.randn(40, 5, generator=gen)
    crow, col, val = adj.crow_indices().numpy(), adj.col_indices().numpy(), adj.values().numpy()
    expected = np.zeros((40, 5), dtype=np.float32)
    for i in range(40):
        for k in range(crow[i], crow[i + 1]):
            expected[i] = expected[i] + val[k] * h.numpy()[col[k]]  # float32 throughout
    assert torch.equal(blockwise(adj, h, 7), torch.from_numpy(expected))


def test_load_propagated_adds_an_order_and_keeps_the_others(cora, tmp_data_dir):
    propagate_stage("cora", [1])
    load_propagated("cora", 3)
    folder = tmp_data_dir / "cora" / "propagated"
    assert sorted(p.name for p in folder.glob("p*.npy")) == ["p1.npy", "p3.npy"]


def test_bad_orders_are_refused(cora):
    with pytest.raises(DataError, match="non-negative"):
        propagate_stage("cora", [-1, 2])


def test_stages_are_deterministic(shared_datasets, tmp_path):
    hashes = []
    for run in ("a", "b"):
        data = tmp_path / run
        fetch("cora", data_dir=data, mirror=shared_datasets)
        adj, propagated = normalise_stage("cora", data), propagate_stage("cora", [2], data)
        hashes.append([content_hash(adj), content_hash(propagated)])
    assert hashes[0] == hashes[1]


def test_stale_stages_are_recomputed(cora_user_files, tmp_data_dir, tmp_path):
    from dgnn.data import import_graph

    import_graph("papers", cora_user_files["edges"], cora_user_files["nodes"])
    before = load_propagated("papers", 1)
    lines = cora_user_files["edges"].read_text().splitlines()
    (tmp_path / "fewer.csv").write_text("\n".join(lines[:-1000]) + "\n")
    import_graph("papers", tmp_path / "fewer.csv", cora_user_files["nodes"])
    assert load_adjacency("papers").values().numel() == 2 * (5278 - 1000) + 2708
    assert not torch.equal(load_propagated("papers", 1), before)


def test_verify_detects_a_changed_file(cora, tmp_data_dir):
    normalise_stage("cora")
    assert verify("cora").nodes == 2708
    np.save(tmp_data_dir / "cora" / "adj" / "values.npy", np.zeros(3, np.float32))
    with pytest.raises(DataError, match="adj changed after it was written"):
        verify("cora")


def test_atomic_folder_keeps_the_old_version_on_error(tmp_path):
    dest = tmp_path / "data" / "x" / "graph"
    with atomic_folder(dest) as tmp:
        (tmp / "a.npy").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(dest) as tmp:
            (tmp / "a.npy").write_text("new")
            raise RuntimeError("disk full")
    assert (dest / "a.npy").read_text() == "old"
    assert sorted(p.name for p in dest.parent.iterdir()) == [".graph.lock", "graph"]  # no temporaries
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "data" / "new" / "graph"):
            raise RuntimeError
    assert not (tmp_path / "data" / "new").exists()


def test_stage_commands(cora, tmp_data_dir, capsys):
    from cli.main import main

    assert main(["normalise", "cora", "--json"]) == 0
    adj = json.loads(capsys.readouterr().out)
    assert adj == {"path": str((tmp_data_dir / "cora" / "adj").resolve()),
                   "content_hash": content_hash(tmp_data_dir / "cora" / "adj")}
    assert main(["propagate", "cora", "--orders", "2", "1", "--block-rows", "500"]) == 0
    assert "propagated" in capsys.readouterr().out
    assert main(["propagate", "cora", "--orders", "1", "--feature-norm", "row", "--json"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_data_dir / "cora" / "propagated" / "meta.json").read_text())["feature_norm"] == "row"
    assert main(["propagate", "cora", "--orders", "-1"]) == 2
    assert "error: propagation orders must be non-negative" in capsys.readouterr().err
