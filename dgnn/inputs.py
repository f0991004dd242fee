"""The bridge from the data stages to the trainer: a dataset's graph, Â and each config's first
input P_1, shared by the seeds and candidate configs of one job (``dgnn train``, the pipeline's
module steps, the tune and the portfolio)."""

from __future__ import annotations

import time
from typing import Callable

import torch

from dgnn.config import ModuleConfig, TrainConfig
from dgnn.data import load_adjacency, load_graph, stored_propagated
from dgnn.data.stages import MapBlocks, adjacency_folder, run_blocks
from dgnn.node_store import DiskStore, MemoryStore, NodeTensor
from dgnn.propagation import normalise_features
from dgnn.trainer import DecoupledTrainer


class Inputs:
    """What the trainer needs from the data stages: the graph, Â, and P_1 = g_1(Â) N(X) per config.

    P_1 depends only on module 1's filter and the feature normalisation, so it is computed once per
    (normalisation, filter) and shared by every seed and every candidate config that uses it: read
    from the propagate stage when it stored that power and normalisation, else filtered in memory
    (the stage's DVC-tracked output is never rewritten). Only the last few are kept: each one is
    as large as the features. Â is read when first needed: an out-of-core run reads its rows
    from the stage's files instead (:meth:`disk_store`).
    """

    KEEP = 3

    def __init__(self, dataset: str, graph, adj: torch.Tensor | None = None, data_dir=None):
        self.dataset, self.graph, self._adj, self.data_dir = dataset, graph, adj, data_dir
        self._first: dict[tuple, torch.Tensor] = {}
        self._first_seconds: dict[tuple, float] = {}

    @property
    def adj(self) -> torch.Tensor:
        if self._adj is None:
            self._adj = load_adjacency(self.dataset, data_dir=self.data_dir)
        return self._adj

    def disk_store(self, folder, device="cpu", map_blocks: MapBlocks = run_blocks) -> DiskStore:
        """An out-of-core store in ``folder`` over this dataset's stored Â."""
        return DiskStore(folder, adjacency_folder(self.dataset, self.data_dir), device, map_blocks=map_blocks)

    @staticmethod
    def _key(config: TrainConfig) -> tuple:
        module = config.modules[0]
        if module.filter == "bank":
            return config.feature_norm, "bank", 0, 0.0, module.channels
        kind = "power" if module.order == 0 else module.filter
        return config.feature_norm, kind, module.order, module.alpha if kind in ("average", "lazy") else 0.0, ()

    def first_input(self, config: TrainConfig, on_hop: Callable[[], None] | None = None,
                    store: DiskStore | None = None) -> NodeTensor:
        """P_1 for ``config``; ``on_hop`` is passed to :func:`~dgnn.nn.filters.graph_filter`. With
        an out-of-core ``store``, a RowFile: the stage's file, else one the store writes (not
        cached: it lives and goes with the store's folder)."""
        key = self._key(config)
        if store is not None:
            return self._filtered(key, store, on_hop)
        if key not in self._first:
            start = time.perf_counter()
            first = self._filtered(key, None, on_hop)
            while len(self._first) >= self.KEEP:
                self._first.pop(next(iter(self._first)))
            self._first[key] = first
            self._first_seconds[key] = time.perf_counter() - start
        return self._first[key]

    def _filtered(self, key: tuple, store: DiskStore | None, on_hop) -> NodeTensor:
        """P_1 of ``key``: the propagate stage's, when it stored that power, else filtered in
        ``store`` (in memory with Â when None)."""
        norm, kind, order, alpha, channels = key
        if kind == "power":
            stored = stored_propagated(self.dataset, order, data_dir=self.data_dir, feature_norm=norm,
                                       as_file=store is not None)
            if stored is not None:
                return stored
        store = store or MemoryStore(self.adj)
        x = store.map_rows(lambda rows: normalise_features(rows.float(), norm), self.graph.x)
        spec = ModuleConfig(width=1, order=order, filter=kind, alpha=alpha, channels=channels)
        return store.propagate(x, spec, on_hop)

    def first_input_cost(self, config: TrainConfig) -> float | None:
        """Seconds :meth:`first_input` would take now: 0 when cached, the last measured time when
        it was dropped from the cache, None when never computed here."""
        key = self._key(config)
        return 0.0 if key in self._first else self._first_seconds.get(key)

    def trainer(self, config: TrainConfig, seed: int, device,
                on_hop: Callable[[], None] | None = None, store: DiskStore | None = None) -> DecoupledTrainer:
        """A trainer for ``config``; node tensors in memory, or in ``store`` (out of core)."""
        return DecoupledTrainer(self.graph, config, seed=seed, device=device,
                                adj=None if store is not None else self.adj,
                                first_input=self.first_input(config, on_hop, store), store=store)


def load_inputs(dataset: str, data_dir=None, split_seed: int = 0, mapped: bool = False) -> Inputs:
    """The stored graph of ``dataset`` (building it when missing); ``mapped``: its features and
    edges memory-mapped, read only where used (out-of-core runs)."""
    graph = load_graph(dataset, data_dir=data_dir, split_seed=split_seed, mapped=mapped)
    return Inputs(dataset, graph, None, data_dir)
