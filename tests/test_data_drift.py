"""The drift between two versions of an imported graph, by the user's node ids and class names."""

from __future__ import annotations

import numpy as np
import torch

from dgnn.data.drift import drift_summary
from dgnn.data.graph import Graph


def _graph(ids: list[str], edges: list[tuple[str, str]], labels: list[int], names: list[str]) -> Graph:
    index = {k: i for i, k in enumerate(ids)}
    pairs = [(index[a], index[b]) for a, b in edges]
    edge_index = torch.tensor(pairs + [(b, a) for a, b in pairs]).T  # both directions, as stored
    mask = torch.zeros(len(ids), dtype=torch.bool)
    return Graph("g", torch.eye(len(ids)), edge_index, torch.tensor(labels), mask, mask, mask,
                 node_ids=np.array(ids), meta={"class_names": names})


def test_nodes_edges_and_labels_are_compared_by_id_and_class_name():
    old = _graph(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d")], [0, 1, 1, 0], ["cat", "dog"])
    # "d" is gone, "e" is new; class numbers shift because a class "ant" sorts first; "b" became a cat
    new = _graph(["e", "c", "b", "a"], [("b", "a"), ("a", "e"), ("e", "c")], [0, 2, 1, 1],
                 ["ant", "cat", "dog"])
    drift = drift_summary(old, new)
    assert drift["nodes"] == {"before": 4, "after": 4, "added": 1, "removed": 1}
    assert drift["edges"] == {"before": 3, "after": 3, "added": 2, "removed": 2}  # a-b kept, whichever way round
    assert drift["classes"] == {"before": 2, "after": 3}
    assert drift["labels_changed"] == 1  # b: dog -> cat; a and c keep their names under new numbers
    assert drift["label_counts"] == {"ant": {"before": 0, "after": 1}, "cat": {"before": 2, "after": 2},
                                     "dog": {"before": 2, "after": 1}}
