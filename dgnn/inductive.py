r"""A trained module stack applied to a graph it was not trained on: new nodes, new edges.

Nothing of the decoupled stack is tied to the training graph's nodes: module :math:`l` is a
function of the rows of :math:`P_l = g_l(\hat A) H_{l-1}`, so a grown graph (the training graph
with nodes and edges added, or another graph with the same feature columns) gets its own
:math:`\hat A`, its own exact propagations and the same weights, exactly as the trainer applies
them after a pass (:func:`dgnn.nn.stack.stack_probabilities`).

Labels are never required. A config that reads training labels (labels as input, Correct and
Smooth) reads the labels that the new graph's nodes table gives: the nodes whose labels are known;
a node left unlabelled there is predicted from its features and its neighbours only.
"""

from __future__ import annotations

import torch

from dgnn.config import TrainConfig
from dgnn.data.graph import Graph
from dgnn.nn.module import DecoupledModule
from dgnn.nn.stack import stack_probabilities
from dgnn.propagation import normalised_adjacency


class GraphMismatch(ValueError):
    """The new graph does not fit the model: its features or classes are not the trained ones."""


def aligned_features(graph: Graph, num_features: int, columns: list[str] | None) -> torch.Tensor:
    """The new graph's features in the trained column order: by name where the model knows its
    columns (an imported graph's), else by position."""
    have = graph.meta.get("feature_columns")
    if columns is not None and have is not None:
        missing = [c for c in columns if c not in have]
        if missing:
            raise GraphMismatch(f"the nodes table lacks {len(missing)} feature column(s) the model was trained on, "
                                f"first {missing[:5]}; give every column of the training nodes file")
        position = {c: i for i, c in enumerate(have)}
        return graph.x[:, [position[c] for c in columns]]
    if graph.num_features != num_features:
        raise GraphMismatch(f"the nodes table has {graph.num_features} feature columns, the model was trained on "
                            f"{num_features}; give the same feature columns in the same order")
    return graph.x


def known_labels(graph: Graph, num_classes: int | None, class_names: list[str] | None) -> torch.Tensor:
    """A class per node in the model's numbering where the nodes table gives one, -1 elsewhere.

    Text labels are numbered by the training graph's class names, not by the new file's own sorted
    names (which miss the classes nobody labelled there)."""
    y = graph.y.clone()
    names = graph.meta.get("class_names")
    if names is not None:
        if class_names is None:
            raise GraphMismatch("the nodes table names its classes, the model's classes are numbers: "
                                "write the labels as class numbers")
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise GraphMismatch(f"labels {unknown[:5]} are not classes of the model ({len(class_names)} classes)")
        mapping = torch.tensor([class_names.index(n) for n in names], dtype=torch.long)
        y[y >= 0] = mapping[y[y >= 0]]
    if num_classes is not None and y.numel() and int(y.max()) >= num_classes:
        raise GraphMismatch(f"label {int(y.max())} is not a class of the model (classes 0..{num_classes - 1})")
    return y


def graph_probabilities(config: TrainConfig, modules: list[DecoupledModule], graph: Graph, x: torch.Tensor,
                        labels: torch.Tensor, post: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H_L, class probabilities or None) for every node of ``graph``, whose features ``x`` are in
    the trained column order (:func:`aligned_features`) and whose known ``labels`` are in the
    model's numbering (:func:`known_labels`)."""
    adj = normalised_adjacency(graph.edge_index, graph.num_nodes, graph.edge_weight)
    if not bool((labels >= 0).any()):
        post = None  # Correct and Smooth has no known label to spread: the stack's own probabilities
    # The stack reads the labels only where the config takes them (label input, Correct and Smooth).
    return stack_probabilities(config, modules, adj, x, labels, post)
