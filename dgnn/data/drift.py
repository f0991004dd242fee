"""What changed between two versions of one graph: nodes, edges, classes and labels, by the
user's node ids (positions where the graph has none)."""

from __future__ import annotations

import numpy as np

from dgnn.data.graph import Graph


def _ids(graph: Graph) -> np.ndarray:
    return np.asarray(graph.node_ids if graph.node_ids is not None else np.arange(graph.num_nodes)).astype(str)


def _edge_keys(graph: Graph, ids: np.ndarray) -> set[tuple[str, str]]:
    src, dst = graph.edge_index.numpy()
    one_way = src < dst
    return {tuple(sorted(pair)) for pair in zip(ids[src[one_way]], ids[dst[one_way]])}


def _labels(graph: Graph) -> np.ndarray:
    """Each node's class as text (its name where the graph names its classes), "" unlabelled:
    comparable across versions whose text labels are numbered differently."""
    names = graph.meta.get("class_names")
    y = graph.y.numpy()
    text = np.asarray(names, dtype=object)[y.clip(0)] if names else y.astype(str)
    return np.where(y >= 0, text.astype(str), "")


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


def drift_summary(old: Graph, new: Graph) -> dict:
    """Counts before and after, nodes and edges added and removed, labels that changed, and the
    label count of each class in both versions (a class absent from one version counts 0 there)."""
    old_ids, new_ids = _ids(old), _ids(new)
    old_set, new_set = set(old_ids), set(new_ids)
    old_edges, new_edges = _edge_keys(old, old_ids), _edge_keys(new, new_ids)
    old_labels, new_labels = _labels(old), _labels(new)
    old_y, new_y = dict(zip(old_ids, old_labels)), dict(zip(new_ids, new_labels))
    old_counts, new_counts = _label_counts(old_labels), _label_counts(new_labels)
    classes = sorted(set(old_counts) | set(new_counts))
    return {
        "nodes": {"before": old.num_nodes, "after": new.num_nodes,
                  "added": len(new_set - old_set), "removed": len(old_set - new_set)},
        "edges": {"before": len(old_edges), "after": len(new_edges),
                  "added": len(new_edges - old_edges), "removed": len(old_edges - new_edges)},
        "classes": {"before": old.num_classes, "after": new.num_classes},
        "labels_changed": sum(old_y[k] != new_y[k] for k in old_set & new_set),
        "label_counts": {c: {"before": old_counts.get(c, 0), "after": new_counts.get(c, 0)} for c in classes},
    }
