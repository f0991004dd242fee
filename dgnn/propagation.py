r"""Graph operators: the normalised adjacency \hat A and exact propagation \hat A^p H.

.. math::
    \hat A = \tilde D^{-1/2} (A + I) \tilde D^{-1/2}, \qquad \tilde D_{ii} = \sum_j (A + I)_{ij}

The matrix is a ``torch.sparse_csr_tensor``; nothing here ever builds a dense n x n matrix.
"""

from __future__ import annotations

import warnings

import torch


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, num_nodes: int,
               rows: int | None = None) -> torch.Tensor:
    """The n x n (``rows`` x n for a block of rows) sparse CSR tensor of these arrays, which dgnn
    wrote sorted and in range: torch's invariant checks are explicitly off, and its note that CSR
    support is "beta" is silenced here (only the stable sparse @ dense product is used)."""
    size = (num_nodes if rows is None else rows, num_nodes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def normalise_features(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Feature normalisation before propagation: "row" scales each row to an L1 norm of 1 (its sum,
    for the non-negative bag-of-words features of citation graphs), "none" keeps x.

    The L1 norm, not the plain sum: a row of signed features (standardised columns, embeddings)
    can sum to nearly zero, and dividing by that would blow it up by orders of magnitude."""
    if kind == "none":
        return x
    if kind == "row":
        return x / x.abs().sum(1, keepdim=True).clamp_min(1e-12)
    raise ValueError(f"unknown feature normalisation {kind!r}: use 'none' or 'row'")


EDGE_CHUNK = 1 << 24  # edges placed per step: bounds the temporaries on 100M-edge graphs


def normalised_adjacency(
    edge_index: torch.Tensor,
    num_nodes: int,
    edge_weight: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Symmetric normalised adjacency with one self-loop per node, as sparse CSR.

    ``edge_index`` must be symmetric without self-loops (see :mod:`dgnn.data.edges`). Columns are
    sorted within each row, so the arrays, and their hash, do not depend on the input order; input
    sorted by (row, col), as every stored graph is, is placed without a sort.
    """
    row, col = edge_index[0].long(), edge_index[1].long()
    weight = None if edge_weight is None else edge_weight.double()
    key = row * num_nodes + col
    if not bool((key[1:] > key[:-1]).all()):
        order = torch.argsort(key)
        row, col = row[order], col[order]
        weight = None if weight is None else weight[order]
    del key
    loops = torch.arange(num_nodes, dtype=torch.long)
    degree = torch.zeros(num_nodes, dtype=torch.float64)
    degree.index_add_(0, row, torch.ones(1, dtype=torch.float64).expand(row.numel()) if weight is None else weight)
    degree.index_add_(0, loops, torch.ones(num_nodes, dtype=torch.float64))
    inv_sqrt = degree.pow(-0.5)
    edge_counts = torch.bincount(row, minlength=num_nodes)
    crow = torch.zeros(num_nodes + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(edge_counts + 1, 0)
    edge_start = crow[:-1] - loops  # first edge of each row in the input: crow counts one loop per row
    below = torch.bincount(row[col < row], minlength=num_nodes)  # edges left of the diagonal, per row
    values = torch.empty(row.numel() + num_nodes, dtype=dtype)
    cols = torch.empty(row.numel() + num_nodes, dtype=torch.long)
    diagonal = crow[:-1] + below
    cols[diagonal] = loops
    values[diagonal] = (inv_sqrt * inv_sqrt).to(dtype)
    for lo in range(0, row.numel(), EDGE_CHUNK):
        r, c = row[lo : lo + EDGE_CHUNK], col[lo : lo + EDGE_CHUNK]
        w = 1.0 if weight is None else weight[lo : lo + EDGE_CHUNK]
        position = crow[r] + (torch.arange(lo, lo + len(r)) - edge_start[r]) + (c > r)
        cols[position] = c
        values[position] = (inv_sqrt[r] * w * inv_sqrt[c]).to(dtype)
    return csr_tensor(crow, cols, values, num_nodes)


def propagate(adj: torch.Tensor, h: torch.Tensor, order: int) -> torch.Tensor:
    r"""Exact :math:`\hat A^{p} H` by ``order`` sparse-dense products (``order`` 0 returns ``h``)."""
    if order < 0:
        raise ValueError(f"propagation order must be >= 0, got {order}")
    adj = adj.to(device=h.device, dtype=h.dtype)
    for _ in range(order):
        h = adj @ h
    return h


def row_blocks(num_rows: int, block_rows: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``block_rows`` rows covering ``range(num_rows)`` in order."""
    return [(start, min(start + block_rows, num_rows)) for start in range(0, num_rows, block_rows)]


def propagate_block(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    r"""Rows :math:`[a, b)` of :math:`\hat A H`, given only those rows of :math:`\hat A`;
    bit-identical on every CPU and for any split of the rows into blocks.

    ``crow`` is ``indptr[a : b + 1]`` of the CSR matrix (absolute offsets), ``col`` and ``values``
    its entries ``indptr[a]`` to ``indptr[b]``. Row ``i`` is :math:`\sum_j a_{ij} h_j` summed in
    column order, each product and each sum one rounded operation (gather, multiply,
    ``index_add_``). ``adj @ h`` (MKL) leaves the order and the use of fused multiply-adds to the
    CPU it runs on, so its last bits, and with them the DVC hash of the propagate stage, would
    differ between machines.
    """
    rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=h.device), crow.diff())
    products = h.index_select(0, col).mul_(values.to(h.dtype)[:, None])
    out = torch.zeros(len(crow) - 1, h.shape[1], dtype=h.dtype, device=h.device)
    return out.index_add_(0, rows, products)
