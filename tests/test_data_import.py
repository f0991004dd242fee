"""User graphs: import CSV / Parquet, ids remapped and kept, predictions mapped back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dgnn.data import (
    DataError,
    fetch,
    import_graph,
    load_adjacency,
    load_graph,
    load_propagated,
    predictions_to_ids,
)


def test_csv_round_trip_maps_predictions_to_original_ids(cora_user_files, tmp_data_dir):
    result = import_graph("papers", cora_user_files["edges"], cora_user_files["nodes"])
    original, ids = cora_user_files["graph"], cora_user_files["ids"]
    assert (result.nodes, result.edges, result.features, result.classes) == (2708, 5278, 32, 7)
    assert result.split == {"kind": "user split column"}

    graph = load_graph("papers")
    assert list(graph.node_ids) == list(ids)  # node i is row i of nodes.csv
    assert torch.equal(graph.x, original.x[:, :32])
    assert torch.equal(graph.y, original.y)
    assert torch.equal(graph.test_mask, original.test_mask)
    assert torch.equal(graph.edge_index, original.edge_index)

    # A "trainer" that predicts the true label: the table must give each original id its label.
    scores = torch.nn.functional.one_hot(graph.y.clamp(min=0), 7).float()
    table = predictions_to_ids(graph, scores)
    truth = dict(zip(ids, original.y.tolist()))
    labelled = table[graph.y.numpy() >= 0]
    assert list(table.columns) == ["node_id", "prediction"]
    assert all(truth[i] == p for i, p in zip(labelled["node_id"], labelled["prediction"]))


def test_imported_name_works_like_a_catalogue_name(cora_user_files, tmp_data_dir):
    import_graph("papers", cora_user_files["edges"], cora_user_files["nodes"])
    assert fetch("papers").nodes == 2708
    adj = load_adjacency("papers")
    assert adj.shape == (2708, 2708) and adj.values().numel() == 2 * 5278 + 2708
    assert load_propagated("papers", 2).shape == (2708, 32)


def test_parquet_with_integer_ids_weights_and_no_split(cora_user_files, tmp_data_dir, tmp_path):
    nodes = pd.read_csv(cora_user_files["nodes"]).drop(columns="split")
    edges = pd.read_csv(cora_user_files["edges"])
    numeric = {old: 1000 + k for k, old in enumerate(nodes["node_id"])}
    nodes["node_id"] = nodes["node_id"].map(numeric)
    edges = edges.apply(lambda c: c.map(numeric)).assign(weight=2.0)
    edges.loc[0, "weight"] = 5.0
    reverse = edges.iloc[:3].rename(columns={"src": "dst", "dst": "src"})
    edges = pd.concat([edges, reverse])  # both directions of 3 edges: not duplicates
    nodes.to_parquet(tmp_path / "nodes.parquet")
    edges.to_parquet(tmp_path / "edges.parquet")

    result = import_graph("weighted", tmp_path / "edges.parquet", tmp_path / "nodes.parquet")
    assert result.edges == 5278
    assert result.split["kind"] == "stratified"
    assert result.edge_policy == {"self_loops_dropped": 0, "duplicates_merged": 0}
    graph = load_graph("weighted")
    assert graph.node_ids.dtype == np.int64 and graph.node_ids[0] == 1000
    assert sorted(set(graph.edge_weight.tolist())) == [2.0, 5.0]
    assert int(graph.train_mask.sum()) == 140
    assert predictions_to_ids(graph, np.zeros(2708, int))["node_id"].iloc[-1] == 1000 + 2707


def test_import_without_labels(cora_user_files, tmp_data_dir, tmp_path):
    nodes = pd.read_csv(cora_user_files["nodes"]).drop(columns=["label", "split"])
    nodes.to_csv(tmp_path / "n.csv", index=False)
    result = import_graph("unlabelled", cora_user_files["edges"], tmp_path / "n.csv")
    assert result.classes == 0
    assert not load_graph("unlabelled").train_mask.any()


def test_self_loops_and_duplicates_are_reported(cora_user_files, tmp_data_dir, tmp_path):
    edges = pd.read_csv(cora_user_files["edges"])
    extra = pd.DataFrame({"src": [edges.src[0], edges.src[1], edges.src[0]],
                          "dst": [edges.src[0], edges.dst[1], edges.dst[0]]})
    pd.concat([edges, extra]).to_csv(tmp_path / "e.csv", index=False)
    result = import_graph("papers", tmp_path / "e.csv", cora_user_files["nodes"])
    assert result.edge_policy == {"self_loops_dropped": 1, "duplicates_merged": 2}
    assert result.edges == 5278


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", ""])
def test_unsafe_names_are_refused(name, cora_user_files, tmp_data_dir):
    with pytest.raises(DataError, match="invalid dataset name"):
        import_graph(name, cora_user_files["edges"], cora_user_files["nodes"])
    assert list(tmp_data_dir.iterdir()) == []


def test_predictions_of_wrong_length(cora_user_files, tmp_data_dir):
    import_graph("papers", cora_user_files["edges"], cora_user_files["nodes"])
    with pytest.raises(ValueError, match="expected 2708 predictions"):
        predictions_to_ids(load_graph("papers"), np.zeros(5))


def test_text_labels_are_numbered_in_sorted_order_and_named(cora_user_files, tmp_data_dir):
    result = import_graph("named", cora_user_files["edges"], cora_user_files["named_nodes"])
    assert result.classes == 7
    graph = load_graph("named")
    assert graph.meta["class_names"] == [f"topic-{k}" for k in range(7)]
    assert torch.equal(graph.y, cora_user_files["graph"].y)
    assert "class_names" not in load_graph(import_graph("ints", cora_user_files["edges"],
                                                        cora_user_files["nodes"]).name).meta


def test_text_labels_with_unlabelled_nodes_are_not_a_mix_of_numbers_and_names(cora_user_files, tmp_data_dir, tmp_path):
    """An empty label is unlabelled: it was counted as a number, and a file of names with any
    unlabelled node was refused as mixing class numbers and names."""
    nodes = pd.read_csv(cora_user_files["named_nodes"]).drop(columns="split")
    nodes.loc[nodes.index % 3 == 0, "label"] = None
    nodes.to_csv(tmp_path / "nodes.csv", index=False)
    graph = load_graph(import_graph("some-named", cora_user_files["edges"], tmp_path / "nodes.csv").name)
    y = cora_user_files["graph"].y.clone()
    y[::3] = -1
    assert graph.meta["class_names"] == [f"topic-{k}" for k in range(7)] and torch.equal(graph.y, y)
