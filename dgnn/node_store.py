r"""Where the trainer keeps its node-sized tensors (:math:`H_l`, :math:`\hat A^p H_l`, :math:`E_l`).

:class:`MemoryStore` holds them as tensors on the trainer's device (the default). :class:`DiskStore`
holds them out of core, as write-once :class:`~dgnn.rowfile.RowFile`\ s in a folder: SGD gathers its
batch rows, a forward pass streams row blocks through the module, a propagation writes the next
power block by block (in this process, or as Dask tasks through ``map_blocks``). Both run the same
operations on the same rows, so a run gives the same numbers either way; what changes is memory:
one block plus the propagated matrix's source instead of every node tensor.
:func:`out_of_core_for` decides between them ("auto": when the node tensors would take more than
half of the memory available).
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch

from dgnn.config import ModuleConfig, TrainConfig
from dgnn.data.stages import MapBlocks, csr_rows, run_blocks
from dgnn.machine import available_memory
from dgnn.nn.filters import average, combine_hops, hop_weights, module_filter, propagates
from dgnn.propagation import csr_tensor, row_blocks
from dgnn.rowfile import RowFile

NodeTensor = Union[torch.Tensor, RowFile]
RowFunction = Callable[[torch.Tensor], torch.Tensor]
BLOCK_ROWS = 1 << 16  # 32 MiB of a 128-wide float32 block
PREFIX = "rows-"
MODES = ("auto", "on", "off")


def node_tensor_bytes(num_nodes: int, num_features: int, config: TrainConfig) -> int:
    """Bytes of the trainer's node tensors held at once in memory: X and P_1 (with its DropNode
    views), each inner module's H, P (and views) and E, the last module's H and the best pass's
    copy of it; a filter bank's P is as many inputs wide as it has channels."""
    inputs = [num_features] + [m.width for m in config.modules]
    columns = num_features + 2 * inputs[-1] + sum(inputs[1:-1]) * 2
    for width, module in zip(inputs, config.modules):
        views = 1 + (config.consistency.views if config.consistency and propagates(module) else 0)
        columns += width * views * max(1, len(module.channels))
    return 4 * num_nodes * columns


def out_of_core_for(mode: str, num_nodes: int, num_features: int, config: TrainConfig) -> bool:
    """Whether to keep node tensors on disk: ``mode`` "on", "off", or "auto" (more than half of
    :func:`available_memory`)."""
    if mode not in MODES:
        raise ValueError(f"out-of-core mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    return node_tensor_bytes(num_nodes, num_features, config) > available_memory() // 2


class MemoryStore:
    """Node tensors as tensors on the trainer's device; ``adj`` is :math:`\\hat A` (sparse CSR)."""

    out_of_core = False

    def __init__(self, adj: torch.Tensor):
        self.adj = adj

    def propagate(self, h: torch.Tensor, module: ModuleConfig,
                  on_hop: Callable[[], None] | None = None) -> torch.Tensor:
        """``module``'s filter applied to ``h`` (:func:`dgnn.nn.filters.module_filter`)."""
        return module_filter(self.adj, h, module, on_hop)

    def filtered(self, h: torch.Tensor, module: ModuleConfig) -> torch.Tensor:
        """:meth:`propagate` as a tensor in memory (what post-processing reads)."""
        return self.propagate(h, module)

    def scale_rows(self, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Row i of ``h`` times ``weights[i]``."""
        return h * weights.to(h.device)[:, None]

    def map_rows(self, fn: RowFunction, source: torch.Tensor) -> torch.Tensor:
        return fn(source)

    def apply_rows(self, fn: RowFunction, source: torch.Tensor) -> torch.Tensor:
        return fn(source)

    def take(self, tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return tensor[index]

    def load(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def snapshot(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().clone()

    def release(self) -> None:
        """Nothing is mapped."""

    def collect(self, live) -> None:
        """Nothing to free: a tensor goes when nothing refers to it."""


@lru_cache(maxsize=1)
def _mapped(path: str, mtime_ns: int) -> torch.Tensor:
    """The matrix of a ``.npy`` file, memory-mapped copy-on-write; kept for the blocks of one hop
    (``mtime_ns`` in the key: a rewritten file is mapped anew)."""
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def hop_rows(adjacency: Path, source: Path, out: Path, start: int, end: int) -> None:
    r"""Rows ``[start, end)`` of :math:`\hat A H` into the RowFile ``out``, with :math:`\hat A` from
    the CSR folder ``adjacency`` (``indptr``/``indices``/``values``) and H from ``source``.

    A row of a CSR product is summed on its own, so any split into blocks gives the bytes of the
    whole ``adj @ h`` on the same CPU (the product the in-memory trainer uses)."""
    crow, col, values = csr_rows(adjacency, start, end)
    h = _mapped(str(source), os.stat(source).st_mtime_ns)
    block = csr_tensor(crow - crow[0], col, values, len(h), rows=end - start)
    RowFile(out).write(start, block @ h)


class DiskStore:
    """Node tensors as write-once RowFiles ``rows-<id>.npy`` in ``folder`` (a run's folder).

    ``adjacency``: the folder of :math:`\\hat A`'s CSR files (the normalise stage's ``adj/``).
    ``map_blocks`` runs a propagation hop's row blocks (:func:`run_blocks` here; Dask workers that
    see ``folder`` and ``adjacency`` under the same paths, elsewhere).
    """

    out_of_core = True

    def __init__(self, folder: Path, adjacency: Path, device: torch.device | str = "cpu",
                 block_rows: int = BLOCK_ROWS, map_blocks: MapBlocks = run_blocks):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.adjacency = Path(adjacency).resolve()
        self.device = torch.device(device)
        self.block_rows = block_rows
        self.map_blocks = map_blocks
        self._maps: dict[Path, np.ndarray] = {}  # RowFiles gathered from since the last release()

    def _new(self, rows: int, cols: int) -> RowFile:
        return RowFile.create(self.folder / f"{PREFIX}{uuid.uuid4().hex}.npy", rows, cols)

    def _blocks(self, source: NodeTensor) -> list[tuple[int, int]]:
        return row_blocks(len(source), self.block_rows)

    def _read(self, source: NodeTensor, start: int, end: int) -> torch.Tensor:
        rows = source.read(start, end) if isinstance(source, RowFile) else source[start:end]
        return rows.to(self.device)

    def file_of(self, tensor: NodeTensor) -> RowFile:
        """``tensor`` as a RowFile (written to a new one when it is a tensor)."""
        return tensor if isinstance(tensor, RowFile) else self.map_rows(lambda rows: rows, tensor)

    def map_rows(self, fn: RowFunction, source: NodeTensor) -> RowFile:
        """``fn`` applied to ``source`` block by block, into a new RowFile."""
        out = None
        for start, end in self._blocks(source):
            rows = fn(self._read(source, start, end))
            if out is None:
                out = self._new(len(source), rows.shape[1])
            out.write(start, rows.float())
        return out

    def apply_rows(self, fn: RowFunction, source: NodeTensor) -> torch.Tensor:
        """``fn`` applied to ``source`` block by block, the results concatenated in memory."""
        return torch.cat([fn(self._read(source, start, end)) for start, end in self._blocks(source)])

    def take(self, tensor: NodeTensor, index: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, RowFile):
            return tensor[index.to(tensor.device)].to(self.device)
        if tensor.path not in self._maps:
            self._maps[tensor.path] = tensor.mapped()
        return torch.from_numpy(self._maps[tensor.path][index.cpu().numpy()]).to(self.device)

    def release(self) -> None:
        """Unmap what :meth:`take` mapped, and with it the pages it read (after each module step)."""
        self._maps.clear()

    def load(self, tensor: NodeTensor) -> torch.Tensor:
        return self.apply_rows(lambda rows: rows, tensor)

    def snapshot(self, tensor: NodeTensor) -> NodeTensor:
        return tensor  # RowFiles are never written again

    def filtered(self, h: torch.Tensor, module: ModuleConfig) -> torch.Tensor:
        """:meth:`propagate` as a tensor in memory, its file deleted (a narrow result, e.g. class
        probabilities, that post-processing propagates many times over)."""
        out = self.propagate(h, module)
        rows = self.load(out)
        if isinstance(out, RowFile) and out is not h:
            out.path.unlink()
        return rows

    def scale_rows(self, h: NodeTensor, weights: torch.Tensor) -> RowFile:
        """Row i of ``h`` times ``weights[i]``, block by block into a new RowFile."""
        out = None
        for start, end in self._blocks(h):
            rows = self._read(h, start, end) * weights[start:end].to(self.device)[:, None]
            if out is None:
                out = self._new(len(h), rows.shape[1])
            out.write(start, rows)
        return out

    def propagate(self, h: NodeTensor, module: ModuleConfig,
                  on_hop: Callable[[], None] | None = None) -> NodeTensor:
        """:func:`dgnn.nn.filters.module_filter` hop by hop through RowFiles, the same numbers."""
        kind, weights = module.filter, hop_weights(module)
        order = len(weights[0]) - 1 if weights else module.order
        if order == 0 and weights is None:
            return h
        source = self.file_of(h)
        hops = [source]
        try:
            for _ in range(order):
                if on_hop is not None:
                    on_hop()
                out = self._new(len(source), source.shape[1])
                self.map_blocks(partial(hop_rows, self.adjacency, hops[-1].path, out.path), self._blocks(source))
                hops.append(out)
        finally:
            _mapped.cache_clear()  # the source is unmapped in this process
        if kind == "power":
            result = hops[-1]
        else:
            result = self._new(len(source), source.shape[1] * (len(weights) if weights else 1))
            for start, end in self._blocks(source):
                if weights:  # one hop's block at a time: a block of every hop at once may not fit
                    result.write(start, combine_hops(lambda j: self._read(hops[j], start, end), weights))
                    continue
                total = torch.zeros(end - start, source.shape[1], device=self.device)
                for hop in hops[1:]:
                    total += self._read(hop, start, end)
                result.write(start, average(total, self._read(source, start, end), order, module.alpha))
        # the hops, and the copy of a tensor input written for them, are this call's own
        for file in hops[1:] if isinstance(h, RowFile) else hops:
            if file is not result:
                file.path.unlink()
        return result

    def collect(self, live) -> None:
        """Delete this store's RowFiles that no tensor in ``live`` is (superseded ones)."""
        keep = {t.path for t in live if isinstance(t, RowFile)}
        for path in self.folder.glob(f"{PREFIX}*.npy"):
            if path not in keep:
                path.unlink()
