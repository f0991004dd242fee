"""What every peer reads: one dataset's tensors, label views for the search, and propagation caches.

A search must not be able to read labels it may not use, so it gets a view in which they are
gone (``-1``) rather than a promise not to look: the test labels for classification, every label
for clustering. The final per-seed trainings get the full view and read the test labels once.

Caches (the normalised adjacency, powers of Â applied to the features) belong to one method's
search and its final trainings: :meth:`PeerData.fresh` gives each method empty ones, so no method
gets another's precomputation for free, while its own trials share it the way DGNN's trials share
its propagated inputs (``dgnn.seeds.Inputs``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from benchmarks.methods import _csr_adjacency
from dgnn.propagation import normalise_features

CACHE_BYTES = 1 << 30  # propagated features one method may hold at once


class Cut(Exception):
    """The search deadline passed inside a step that cannot stop half-way with a usable result."""


@dataclass(frozen=True)
class PeerData:
    x: torch.Tensor  # features after the feature normalisation DGNN's configs use (row)
    edge_index: torch.Tensor
    adj: torch.Tensor  # binary symmetric adjacency, torch sparse CSR
    y: torch.Tensor  # -1 wherever this view hides the label
    rows: dict[str, torch.Tensor]  # train / val / test node indices
    num_classes: int
    cache: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_graph(cls, graph, feature_norm: str = "row") -> PeerData:
        rows = {k: getattr(graph, f"{k}_mask").nonzero().flatten() for k in ("train", "val", "test")}
        return cls(normalise_features(graph.x.float(), feature_norm), graph.edge_index,
                   _csr_adjacency(graph), graph.y.clone(), rows, graph.num_classes)

    def fresh(self) -> PeerData:
        return replace(self, cache={})

    def visible(self, *splits: str) -> PeerData:
        """This view with the labels of every node outside ``splits`` hidden (caches shared)."""
        y = torch.full_like(self.y, -1)
        for split in splits:
            y[self.rows[split]] = self.y[self.rows[split]]
        return replace(self, y=y, cache=self.cache)

    def labels(self, split: str) -> torch.Tensor:
        y = self.y[self.rows[split]]
        if (y < 0).any():
            raise PermissionError(f"the {split} labels are hidden in this view")
        return y

    def gcn_adj(self) -> torch.Tensor:
        """D̃^-1/2 (A + I) D̃^-1/2, PyG's ``gcn_norm``, once per method: the convolutions get it
        with ``normalize=False`` so that no trial normalises again."""
        if "gcn_adj" not in self.cache:
            from torch_geometric.nn.conv.gcn_conv import gcn_norm

            self.cache["gcn_adj"] = gcn_norm(self.adj)[0]
        return self.cache["gcn_adj"]

    def smoother(self) -> Smoother:
        if "smoother" not in self.cache:
            self.cache["smoother"] = Smoother(self.gcn_adj(), self.x)
        return self.cache["smoother"]


class Smoother:
    """Â^k X and S_k = Â X + ... + Â^k X for any k, each hop extended from the highest hop below
    it that is still held, so trials asking for neighbouring orders pay only the missing hops.

    Every hop computed is held (oldest use dropped first past :data:`CACHE_BYTES`, the latest
    always kept), so a hop loop cut at the deadline leaves its progress to the next trial.
    """

    def __init__(self, adj: torch.Tensor, x: torch.Tensor, max_bytes: int = CACHE_BYTES):
        self.adj, self.x, self.max_bytes = adj, x, max_bytes
        self._held: OrderedDict[int, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def at(self, k: int, on_hop: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if k == 0:
            return self.x, torch.zeros_like(self.x)
        if k in self._held:
            self._held.move_to_end(k)
            return self._held[k]
        start = max((j for j in self._held if j < k), default=0)
        power, total = self._held[start] if start else (self.x, torch.zeros_like(self.x))
        for hop in range(start + 1, k + 1):
            if on_hop is not None:
                on_hop()
            power = self.adj @ power
            total = total + power
            self._hold(hop, power, total)
        return power, total

    def powers(self, k: int, on_hop=None) -> list[torch.Tensor]:
        """[X, ÂX, ..., Â^k X] (SIGN's inputs)."""
        return [self.x] + [self.at(j, on_hop)[0] for j in range(1, k + 1)]

    def _hold(self, hop: int, power: torch.Tensor, total: torch.Tensor) -> None:
        self._held[hop] = (power, total)
        each = 2 * power.numel() * power.element_size()
        while len(self._held) > 1 and each * len(self._held) > self.max_bytes:
            self._held.popitem(last=False)
