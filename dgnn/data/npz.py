"""Reader for GraphGallery ``.npz`` graphs (``adj_matrix``, ``node_attr``, ``node_label``).

Only call it on files whose SHA-256 was verified: the sparse matrices inside are pickled objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from dgnn.data.build import build_graph
from dgnn.data.graph import Graph


def read_npz(path: Path, name: str, split_seed: int = 0) -> Graph:
    """Graph with the seeded stratified split; labels are renumbered 0..C-1 in sorted order.

    Features stay sparse until :func:`build_graph` has validated them. The stored adjacency may
    be directed (Amazon, Cora-ML): every stored entry is an undirected edge.
    """
    path = Path(path)
    with np.load(path, allow_pickle=True) as npz:
        adj = sp.coo_matrix(npz["adj_matrix"].item())
        attr = sp.csr_matrix(npz["node_attr"].item())
        raw_labels = np.asarray(npz["node_label"])
        metadata = npz["metadata"].item() if "metadata" in npz.files else {}
    values, y = np.unique(raw_labels, return_inverse=True)
    names = metadata.get("class_names")
    classes = [str(v if names is None else names[v]) for v in values.tolist()]
    return build_graph(
        name,
        attr,
        np.stack([adj.row, adj.col]),
        y,
        source=path.name,
        num_classes=len(values),
        split_seed=split_seed,
        meta={"class_names": classes},
    )
