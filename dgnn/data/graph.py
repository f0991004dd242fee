"""The in-memory graph every stage works on, and its on-disk form (a folder of ``.npy`` files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dgnn.data.stage_folders import read_meta, write_meta


@dataclass
class Graph:
    """An attributed graph with node labels and a train/validation/test split.

    ``edge_index`` holds every undirected edge in both directions, without self-loops or
    duplicates. ``y`` is -1 where a node has no label. ``node_ids`` keeps the user's original
    ids for imported graphs (position i is node i). ``edge_weight`` (one per ``edge_index``
    column) is set only for weighted user graphs.
    """

    name: str
    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    node_ids: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    edge_weight: torch.Tensor | None = None

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    @property
    def num_edges(self) -> int:
        """Undirected edges (each stored twice in ``edge_index``)."""
        return self.edge_index.shape[1] // 2

    @property
    def num_classes(self) -> int:
        return int(self.y.max().item()) + 1 if self.y.numel() and self.y.max() >= 0 else 0


_ARRAYS = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")


def save_graph(graph: Graph, folder: Path) -> None:
    """Write ``graph`` as one ``.npy`` per array plus ``meta.json`` (byte-deterministic).

    ``meta.json`` holds ``graph.meta``, the counts, and the SHA-256 of every file and of the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key in _ARRAYS:
        np.save(folder / f"{key}.npy", getattr(graph, key).cpu().numpy(), allow_pickle=False)
    if graph.edge_weight is not None:
        np.save(folder / "edge_weight.npy", graph.edge_weight.cpu().numpy(), allow_pickle=False)
    if graph.node_ids is not None:
        np.save(folder / "node_ids.npy", np.asarray(graph.node_ids), allow_pickle=False)
    counts = {
        "nodes": graph.num_nodes,
        "edges": graph.num_edges,
        "features": graph.num_features,
        "classes": graph.num_classes,
    }
    write_meta(folder, {**graph.meta, **counts, "name": graph.name})


def load_graph_folder(folder: Path, mapped: bool = False) -> Graph:
    """Read a folder written by :func:`save_graph`; ``mapped``: features and edges memory-mapped
    (copy-on-write), so only the rows used are read."""
    folder = Path(folder)
    arrays = {k: torch.from_numpy(np.load(folder / f"{k}.npy", allow_pickle=False,
                                          mmap_mode="c" if mapped and k in ("x", "edge_index") else None))
              for k in _ARRAYS}
    weight_file, ids_file = folder / "edge_weight.npy", folder / "node_ids.npy"
    if weight_file.exists():
        arrays["edge_weight"] = torch.from_numpy(np.load(weight_file, allow_pickle=False))
    node_ids = np.load(ids_file, allow_pickle=False) if ids_file.exists() else None
    meta = read_meta(folder)
    return Graph(name=meta.pop("name"), node_ids=node_ids, meta=meta, **arrays)
