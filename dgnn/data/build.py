"""Turn raw parts from any source into a validated :class:`Graph` (the one place every source meets)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from dgnn.data.errors import DataError
from dgnn.data.edges import undirected_edge_index
from dgnn.data.graph import Graph
from dgnn.data.schemas import (
    FEATURE_ROWS,
    SPLIT_MASKS,
    edge_index_schema,
    labels_schema,
    problems,
    raise_problems,
)
from dgnn.data.splits import TRAIN_PER_CLASS, VAL_PER_CLASS, stratified_split


CHUNK_ROWS = 1 << 22  # rows checked at once: the checks' temporaries stay small on 100M-edge graphs


def _nonfinite_per_row(x) -> np.ndarray:
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        return np.bincount(rows[~np.isfinite(x.data)], minlength=x.shape[0])
    return np.concatenate([(~np.isfinite(x[lo : lo + CHUNK_ROWS])).sum(axis=1)
                           for lo in range(0, x.shape[0], CHUNK_ROWS)] or [np.zeros(0, dtype=np.int64)])


def _edge_tables(edges: np.ndarray):
    """The edge list as tables of at most :data:`CHUNK_ROWS` rows, indexed by edge position, made
    one at a time (a 100M-edge list is never copied whole)."""
    for lo in range(0, max(edges.shape[1], 1), CHUNK_ROWS):
        yield pd.DataFrame({"src": edges[0, lo : lo + CHUNK_ROWS], "dst": edges[1, lo : lo + CHUNK_ROWS]},
                           index=pd.RangeIndex(lo, min(lo + CHUNK_ROWS, edges.shape[1])))


def _untrained_classes(y: np.ndarray, train: np.ndarray, names: list | None, source: str, stratified: bool) -> list[str]:
    """A problem when some labelled classes have no node in the train split: nothing teaches the
    model them, so it never predicts them (validation accuracy 0 on their nodes)."""
    labelled, trained = np.unique(y[y >= 0]), np.unique(y[train & (y >= 0)])
    missing = np.setdiff1d(labelled, trained)
    if not missing.size or not trained.size:  # no train node at all: the split check says so
        return []
    shown = ", ".join(repr(names[k]) if names and k < len(names) else str(k) for k in missing[:FIRST_CLASSES])
    fix = ("the stratified split trains on classes of 3 labelled nodes or more: label more nodes of those classes"
           if stratified else "put nodes of every class in the train split")
    return [f"{source} split: the train split holds nodes of {trained.size} of the {labelled.size} labelled classes; "
            f"classes with none: {shown}{', ...' if missing.size > FIRST_CLASSES else ''}; {fix}"]


FIRST_CLASSES = 10


def build_graph(
    name: str,
    x,
    edges: np.ndarray,
    y: np.ndarray,
    source: str,
    *,
    num_classes: int | None = None,
    masks: np.ndarray | None = None,
    split_kind: str = "given",
    split_seed: int = 0,
    weight: np.ndarray | None = None,
    node_ids: np.ndarray | None = None,
    meta: dict | None = None,
    hint: str = "Fix the input and run the command again.",
) -> Graph:
    """Validate edges, features, labels and split lazily, apply the edge policy, return the graph.

    ``x``: [n, d] dense array or scipy sparse (densified to float32 only after validation).
    ``edges``: raw [2, E] node indices. ``y``: class per node, -1 unlabelled. ``masks``: a fixed
    [3, n] train/val/test split (described by ``split_kind``), or None for the seeded stratified
    split. Raises :class:`DataError` listing every problem found, prefixed with ``source``.
    """
    n = x.shape[0]
    edges = np.asarray(edges, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if y.shape != (n,):
        raise DataError(f"{source}: {y.size} labels for {n} nodes (feature rows). {hint}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if masks is None:
        masks = stratified_split(y, split_seed)
        split = {"kind": "stratified", "seed": split_seed}
        split |= {"train_per_class": TRAIN_PER_CLASS, "val_per_class": VAL_PER_CLASS}
    else:
        split = {"kind": split_kind}
    tables = itertools.chain(((table, edge_index_schema(n), "edges") for table in _edge_tables(edges)), [
        (pd.DataFrame({"nonfinite": _nonfinite_per_row(x)}), FEATURE_ROWS, "features"),
        (pd.DataFrame({"label": y}), labels_schema(num_classes), "labels"),
        (pd.DataFrame({"train": masks[0], "val": masks[1], "test": masks[2], "labelled": y >= 0}),
         SPLIT_MASKS, "split"),
    ])
    found = [p for df, schema, part in tables for p in problems(df, schema, f"{source} {part}")[1]]
    raise_problems(found + _untrained_classes(y, masks[0], (meta or {}).get("class_names"), source,
                                              split["kind"] == "stratified"), hint)

    cleaned = undirected_edge_index(edges, n, weight)
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return Graph(
        name=name,
        x=torch.from_numpy(x.astype(np.float32, copy=False)),
        edge_index=torch.from_numpy(cleaned.edge_index),
        y=torch.from_numpy(y),
        train_mask=torch.from_numpy(masks[0]),
        val_mask=torch.from_numpy(masks[1]),
        test_mask=torch.from_numpy(masks[2]),
        node_ids=node_ids,
        meta={**(meta or {}), "source": source, "split": split, "edge_policy": cleaned.report()},
        edge_weight=None if cleaned.edge_weight is None else torch.from_numpy(cleaned.edge_weight),
    )
