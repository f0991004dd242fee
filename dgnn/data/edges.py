"""Edge-list clean-up shared by every source: one policy for self-loops, duplicates and direction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 1 << 22  # keys reversed or thinned per step


@dataclass
class UndirectedEdges:
    """The cleaned edge index plus what the policy removed.

    ``self_loops``: input rows with src == dst (dropped). ``duplicates``: input rows repeating an
    earlier (src, dst) pair in the same direction (merged). An edge given once in each direction
    is the normal form of an undirected edge and counts as neither.
    """

    edge_index: np.ndarray
    edge_weight: np.ndarray | None
    self_loops: int
    duplicates: int

    def report(self) -> dict:
        return {"self_loops_dropped": self.self_loops, "duplicates_merged": self.duplicates}


def _first_of_runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the first element of each run of equal values in a sorted array."""
    first = np.ones(sorted_keys.size, dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return first


def undirected_edge_index(
    edges: np.ndarray, num_nodes: int, weight: np.ndarray | None = None
) -> UndirectedEdges:
    """Symmetric, self-loop-free, duplicate-free edge index (2 x 2E, sorted by (src, dst)).

    Policy: an edge given in either direction is an undirected edge; self-loops are dropped (the
    normalisation adds exactly one per node); repeated edges collapse to one, keeping the largest
    weight when weights are given. Node ids must already be checked to lie in [0, num_nodes).
    Sort-based (``np.unique`` hashes, which is many times slower on 10M+ keys).
    """
    src, dst = np.asarray(edges, dtype=np.int64)
    m = src.size
    loops = src == dst
    self_loops = int(loops.sum())
    if weight is not None:
        return _weighted(src[~loops], dst[~loops], np.asarray(weight, dtype=np.float32)[~loops], num_nodes,
                         self_loops)
    # Both directions' keys go into row 1 of the output and are sorted and thinned there, so the
    # largest graphs hold the raw edges and this buffer, nothing edge-sized besides.
    buffer = np.empty((2, 2 * m), dtype=np.int64)
    key = buffer[1]
    np.multiply(src, num_nodes, out=key[:m])
    key[:m] += dst
    key[:m].sort()
    # repeats of an edge in its own direction, self-loops apart
    duplicates = int((m - self_loops) - (_first_of_runs(key[:m]).sum() - np.unique(src[loops]).size))
    for lo in range(0, m, CHUNK):  # the reverse of each key: r * n + c -> c * n + r
        part = key[lo : min(lo + CHUNK, m)]
        key[m + lo : m + lo + part.size] = part % num_nodes * num_nodes + part // num_nodes
    key.sort()
    kept = 0
    for lo in range(0, key.size, CHUNK):
        part = key[lo : lo + CHUNK]
        first = np.ones(part.size, dtype=bool)
        first[1:] = part[1:] != part[:-1]
        if lo > 0:
            first[0] = part[0] != key[lo - 1]
        first &= part % (num_nodes + 1) != 0  # r * n + c is a multiple of n + 1 only when r == c
        part = part[first]  # a copy, made before the write below, which never passes the read
        key[kept : kept + part.size] = part
        kept += part.size
    edge_index = buffer[:, :kept]
    np.floor_divide(edge_index[1], num_nodes, out=edge_index[0])
    np.remainder(edge_index[1], num_nodes, out=edge_index[1])
    return UndirectedEdges(edge_index, None, self_loops, duplicates)


def _weighted(src: np.ndarray, dst: np.ndarray, w: np.ndarray, num_nodes: int, self_loops: int) -> UndirectedEdges:
    directed = np.sort(src * num_nodes + dst)
    duplicates = int(directed.size - _first_of_runs(directed).sum())
    del directed
    key = np.concatenate([src * num_nodes + dst, dst * num_nodes + src])
    order = np.argsort(key, kind="stable")
    key, w = key[order], np.concatenate([w, w])[order]
    starts = np.flatnonzero(_first_of_runs(key))
    key, edge_weight = key[starts], np.maximum.reduceat(w, starts)
    return UndirectedEdges(np.stack([key // num_nodes, key % num_nodes]), edge_weight, self_loops, duplicates)
