"""Edge-list clean-up shared by every source: one policy for self-loops, duplicates and direction."""

from __future__ import annotations

import numpy as np


def undirected_edge_index(edges: np.ndarray, num_nodes: int) -> np.ndarray:
    """Return the symmetric, self-loop-free, duplicate-free edge index (2 x 2E, sorted by (src, dst)).

    Policy: an edge given in either direction is an undirected edge; self-loops are dropped (the
    normalisation adds exactly one per node); repeated edges collapse to one.
    """
    src, dst = np.asarray(edges, dtype=np.int64)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    both_src = np.concatenate([src, dst])
    both_dst = np.concatenate([dst, src])
    key = np.unique(both_src * num_nodes + both_dst)
    return np.stack([key // num_nodes, key % num_nodes])
