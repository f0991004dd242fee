r"""The derived stages: normalised adjacency ``<name>/adj/`` and :math:`\hat A^k X` ``<name>/propagated/``.

Each stage folder records the content hashes of its inputs (``meta.json`` ``inputs``); a loader
re-runs its stage when the folder is missing or was derived from other inputs, and refuses a
folder whose files changed after it was written (:func:`dgnn.data.layout.require_intact`). The
same functions serve the Prefect tasks and the DVC stages.
"""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dgnn.config import FEATURE_NORMS
from dgnn.data.errors import DataError
from dgnn.data.fetch import ensure_graph
from dgnn.data.layout import FetchResult, damage_error, dataset_dir, require_intact
from dgnn.data.stage_folders import atomic_folder, damaged_files, is_current, is_stored, read_meta, write_meta
from dgnn.rowfile import RowFile
from dgnn.propagation import csr_tensor, normalise_features, normalised_adjacency, propagate_block, row_blocks

_CSR = ("indptr", "indices", "values")
BLOCK_ROWS = 1 << 14  # default rows per propagation block: ~80 MiB of products at degree 10, 128 features
BlockKernel = Callable[[int, int], None]
MapBlocks = Callable[[BlockKernel, list[tuple[int, int]]], None]


def _adj_inputs(name: str, data_dir) -> dict:
    return {"graph": read_meta(ensure_graph(name, data_dir))["content_hash"]}


def normalise_stage(name: str, data_dir=None) -> Path:
    r"""Write :math:`\hat A = \tilde D^{-1/2}(A + I)\tilde D^{-1/2}` as CSR ``.npy`` files; return the folder.

    ``indptr`` / ``indices`` int64, ``values`` float32, columns sorted within each row.
    """
    graph = ensure_graph(name, data_dir)
    edge_index = torch.from_numpy(np.load(graph / "edge_index.npy"))
    weight_file = graph / "edge_weight.npy"
    weight = torch.from_numpy(np.load(weight_file)) if weight_file.exists() else None
    num_nodes = read_meta(graph)["nodes"]
    adj = normalised_adjacency(edge_index, num_nodes, weight)
    del edge_index, weight
    target = dataset_dir(name, data_dir) / "adj"
    with atomic_folder(target) as tmp:
        arrays = (adj.crow_indices(), adj.col_indices(), adj.values())
        for key, array in zip(_CSR, arrays):
            np.save(tmp / f"{key}.npy", array.numpy(), allow_pickle=False)
        write_meta(tmp, {
            "format": "csr",
            "normalisation": "D^-1/2 (A + I) D^-1/2, one self-loop per node",
            "num_nodes": num_nodes,
            "nnz": int(adj.values().numel()),
            "inputs": _adj_inputs(name, data_dir),
        })
    return target


def adjacency_folder(name: str, data_dir=None) -> Path:
    """``adj/``, normalised first if missing or stale, checked against its ``meta.json``."""
    folder = dataset_dir(name, data_dir) / "adj"
    if not is_current(folder, _adj_inputs(name, data_dir)):
        normalise_stage(name, data_dir)
    return require_intact(folder)


def load_adjacency(name: str, data_dir=None) -> torch.Tensor:
    """The normalised adjacency as torch sparse CSR (normalising first if missing or stale)."""
    folder = adjacency_folder(name, data_dir)
    crow, col, values = (torch.from_numpy(np.load(folder / f"{k}.npy")) for k in _CSR)
    return csr_tensor(crow, col, values, crow.numel() - 1)


def _propagated_inputs(name: str, data_dir) -> dict:
    adj = dataset_dir(name, data_dir) / "adj"
    adj_hash = read_meta(adj)["content_hash"] if is_stored(adj) else None
    return {**_adj_inputs(name, data_dir), "adjacency": adj_hash}


def hop_block(adj: Path, previous: Path, out: Path, start: int, end: int) -> None:
    r"""Rows ``[start, end)`` of :math:`\hat A P` into the ``.npy`` file ``out`` (already of full
    size), :math:`\hat A` from the CSR folder ``adj`` and P from the ``.npy`` file ``previous``.

    Reads only these rows of :math:`\hat A` and maps P from disk, so any process that sees the
    files (a Dask worker) can compute any block; :func:`dgnn.propagation.propagate_block` makes
    the result independent of the CPU and of the blocks.
    """
    crow, col, values = csr_rows(adj, start, end)
    h = torch.from_numpy(np.load(previous, mmap_mode="c"))
    RowFile(out).write(start, propagate_block(crow, col, values, h))


def csr_rows(adj: Path, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Rows ``[start, end)`` of :math:`\hat A` from its CSR folder: ``indptr[start : end + 1]``
    (absolute offsets) and the entries between them, read from the files, not the whole matrix."""
    crow = torch.from_numpy(np.array(np.load(adj / "indptr.npy", mmap_mode="r")[start : end + 1]))
    lo, hi = int(crow[0]), int(crow[-1])
    col, values = (torch.from_numpy(np.array(np.load(adj / f"{k}.npy", mmap_mode="r")[lo:hi]))
                   for k in ("indices", "values"))
    return crow, col, values


def run_blocks(kernel: BlockKernel, blocks: list[tuple[int, int]]) -> None:
    """Run ``kernel(start, end)`` for each block, one after the other, in this process."""
    for start, end in blocks:
        kernel(start, end)


def propagate_stage(
    name: str, orders: list[int], data_dir=None, block_rows: int | None = None, feature_norm: str = "none",
    map_blocks: MapBlocks = run_blocks, on_hop: Callable[[str], None] | None = None,
) -> Path:
    r"""Write ``p{k}.npy`` = :math:`\hat A^k N(X)` (float32, [n, d]) for each ``k`` in ``orders``.

    ``N`` is :func:`dgnn.propagation.normalise_features` with ``feature_norm`` ("none" or "row"),
    exactly what the trainer applies before propagating; it is recorded in ``meta.json``.
    Hop k reads hop k-1 from its memory-mapped file and writes its own file in blocks of
    ``block_rows`` rows (default :data:`BLOCK_ROWS`, :func:`hop_block`), so memory stays bounded
    by one block; the numbers are the same on every CPU, so is the DVC hash. ``map_blocks`` runs
    one hop's blocks (in this process by default; elsewhere, e.g. on Dask, if its workers see
    the data folder): any order or parallelism gives the same bytes. Only the requested orders
    are kept. ``on_hop`` gets a progress line after each hop.
    """
    orders = sorted({int(k) for k in orders})
    if not orders or orders[0] < 0:
        raise DataError(f"propagation orders must be non-negative integers, got {orders}")
    if feature_norm not in FEATURE_NORMS:
        raise DataError(f"unknown feature normalisation {feature_norm!r}: use one of {', '.join(FEATURE_NORMS)}")
    adj = adjacency_folder(name, data_dir).resolve()
    graph = ensure_graph(name, data_dir)
    graph_meta = read_meta(graph)
    x_file = (graph / "x.npy").resolve()
    target = dataset_dir(name, data_dir) / "propagated"
    blocks = row_blocks(graph_meta["nodes"], block_rows or BLOCK_ROWS)
    with atomic_folder(target, _propagated_bytes(graph_meta, orders, feature_norm)) as tmp:
        tmp = tmp.resolve()  # the blocks may run in other processes and working directories
        previous = x_file
        if feature_norm != "none":
            x = normalise_features(torch.from_numpy(np.load(x_file)), feature_norm)
            np.save(tmp / "p0.npy", x.numpy(), allow_pickle=False)
            del x
            previous = tmp / "p0.npy"
        for k in range(1, orders[-1] + 1):
            started = time.perf_counter()
            out = tmp / f"p{k}.npy"
            RowFile.create(out, graph_meta["nodes"], graph_meta["features"])
            map_blocks(partial(hop_block, adj, previous, out), blocks)
            previous = out
            if on_hop is not None:
                on_hop(f"propagate {name}: hop {k}/{orders[-1]} done, {len(blocks)} row blocks "
                       f"({time.perf_counter() - started:.1f}s)")
        for k in set(range(0, orders[-1])) - set(orders):
            (tmp / f"p{k}.npy").unlink(missing_ok=True)
        if orders[0] == 0 and feature_norm == "none":
            shutil.copyfile(x_file, tmp / "p0.npy")
        write_meta(tmp, {"orders": orders, "feature_norm": feature_norm,
                         "inputs": _propagated_inputs(name, data_dir)})
    return target


def _propagated_bytes(graph_meta: dict, orders: list[int], feature_norm: str) -> int:
    """Peak size of :func:`propagate_stage`'s files: hops 1..max (plus a normalised ``p0``) exist
    together before the unrequested ones are deleted; a copied ``p0`` comes after that."""
    files = max(orders[-1] + (feature_norm != "none"), len(orders))
    return files * graph_meta["nodes"] * graph_meta["features"] * np.dtype(np.float32).itemsize


def _stored_orders(name: str, data_dir, feature_norm: str) -> list[int]:
    """Orders held by ``propagated/`` when it is current and of this ``feature_norm`` (a folder
    written before the setting existed counts as "none"); else none."""
    folder = dataset_dir(name, data_dir) / "propagated"
    if not is_current(folder, _propagated_inputs(name, data_dir)):
        return []
    meta = read_meta(folder)
    return meta["orders"] if meta.get("feature_norm", "none") == feature_norm else []


def _read_order(name: str, order: int, data_dir, as_file: bool = False) -> torch.Tensor | RowFile:
    folder = require_intact(dataset_dir(name, data_dir) / "propagated")
    path = folder / f"p{order}.npy"
    return RowFile(path) if as_file else torch.from_numpy(np.load(path))


def stored_propagated(name: str, order: int, data_dir=None, feature_norm: str = "none",
                      as_file: bool = False) -> torch.Tensor | RowFile | None:
    r""":math:`\hat A^{order} N(X)` if ``propagated/`` already holds it, current and with this
    ``feature_norm`` (a RowFile of it with ``as_file``); else None. Never writes (``propagated/``
    may be a DVC output)."""
    if order not in _stored_orders(name, data_dir, feature_norm):
        return None
    return _read_order(name, order, data_dir, as_file)


def load_propagated(name: str, order: int, data_dir=None, feature_norm: str = "none") -> torch.Tensor:
    r""":math:`\hat A^{order} N(X)` as a float32 tensor (propagating first if missing or stale:
    its inputs changed, or it holds another ``feature_norm``)."""
    stored = _stored_orders(name, data_dir, feature_norm)
    if order not in stored:
        propagate_stage(name, [*stored, order], data_dir, feature_norm=feature_norm)
    return _read_order(name, order, data_dir)


def verify(name: str, data_dir=None) -> FetchResult:
    """Hash every stored folder of ``name`` and compare with its ``meta.json`` (no remembered verdict).

    Raises :class:`DataError` naming the first folder changed since it was written, its changed
    files and the command that rewrites it.
    """
    graph = ensure_graph(name, data_dir)
    for stage in sorted(p for p in graph.parent.iterdir() if is_stored(p)):
        files = damaged_files(stage)
        if files:
            raise damage_error(stage, files)
    return FetchResult.from_folder(graph)
