"""CSBM generator: names, determinism, the requested structure, and use through fetch / load_graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgnn.data import SYNTHETIC, fetch, load_graph
from dgnn.data.synthetic import csbm, generate, parse_name


@pytest.mark.parametrize("name, nodes", [
    ("synthetic-csbm-10k", 10_000), ("synthetic-csbm-1m", 1_000_000),
    ("synthetic-csbm-2.5m", 2_500_000), ("synthetic-csbm-1234", 1234),
    ("synthetic-csbm-hard-100k", 100_000), ("synthetic-csbm-hard-10m-d20", 10_000_000),
    ("synthetic-csbm-hard-", None), ("synthetic-csbm-easy-1k", None), ("synthetic-csbm-1k-d", None),
    ("synthetic-csbm-", None), ("synthetic-csbm-1g", None), ("cora", None),
])
def test_parse_name(name, nodes):
    assert parse_name(name) == nodes


def test_presets_are_valid_names():
    assert [parse_name(n) for n in SYNTHETIC] == [10_000, 100_000, 1_000_000] * 2


def test_hard_names_lower_homophily_and_signal():
    easy, hard = generate("synthetic-csbm-5k"), generate("synthetic-csbm-hard-5k")
    assert (hard.meta["generator"]["homophily"], hard.meta["generator"]["feature_signal"]) == (0.5, 0.1)
    assert {**hard.meta["generator"], "homophily": 0.8, "feature_signal": 1.0} == easy.meta["generator"]
    src, dst = hard.edge_index
    assert abs((hard.y[src] == hard.y[dst]).float().mean().item() - 0.5) < 0.02


def test_a_degree_suffix_sets_the_average_degree():
    graph = generate("synthetic-csbm-hard-5k-d20")
    assert graph.meta["generator"] == {**generate("synthetic-csbm-hard-5k").meta["generator"], "avg_degree": 20.0}
    assert 49_000 < graph.num_edges <= 50_000  # n * degree / 2, less self-loops and edges drawn twice


def test_csbm_is_deterministic_for_a_seed():
    a, b, c = csbm(3000, seed=7), csbm(3000, seed=7), csbm(3000, seed=8)
    for key in ("x", "edge_index", "y", "train_mask"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    assert not torch.equal(a.edge_index[:, :100], c.edge_index[:, :100])


def test_csbm_has_the_requested_structure():
    g = csbm(20_000, num_classes=4, avg_degree=8, homophily=0.3, num_features=16, feature_signal=3.0)
    assert (g.num_nodes, g.num_features, g.num_classes) == (20_000, 16, 4)
    report = g.meta["edge_policy"]
    assert g.num_edges + report["self_loops_dropped"] + report["duplicates_merged"] >= 80_000 - 50
    assert g.num_edges > 0.99 * 80_000
    src, dst = g.edge_index
    assert abs((g.y[src] == g.y[dst]).float().mean().item() - 0.3) < 0.02
    assert torch.bincount(g.y).tolist() == [5000] * 4
    centroids = torch.stack([g.x[g.y == c].mean(0) for c in range(4)])
    nearest = torch.cdist(g.x, centroids).argmin(1)
    assert (nearest == g.y).float().mean() > 0.9  # features carry the class signal
    assert g.meta["generator"]["homophily"] == 0.3


def test_fetch_and_load_a_synthetic_name(tmp_data_dir):
    result = fetch("synthetic-csbm-10k")
    assert (result.nodes, result.features, result.classes) == (10_000, 128, 10)
    assert 49_000 < result.edges <= 50_000
    graph = load_graph("synthetic-csbm-10k", split_seed=2)
    assert graph.meta["split"]["seed"] == 2
    assert int(graph.train_mask.sum()) == 200 and int(graph.val_mask.sum()) == 300
    assert np.array_equal(graph.x.numpy(), csbm(10_000).x.numpy())
