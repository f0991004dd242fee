r"""Polynomial graph filters g(Â) for a module's propagated input P_l = g(Â) H_{l-1}.

Any polynomial in Â commutes with the input transform, g(Â)(H U) = (g(Â) H) U, so every filter
here keeps the precomputation property of the plain power Â^p.

* ``power``: :math:`\hat A^p H` (the paper);
* ``average``: :math:`(1-\alpha)\frac1p\sum_{k=1}^{p}\hat A^k H + \alpha H`, the averaged
  (SSGC-style) filter: a high order smooths strongly without collapsing every row to the
  same vector, and α keeps some of each node's own features.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

from dgnn.propagation import propagate

FilterKind = Literal["power", "average"]


def graph_filter(adj: torch.Tensor, h: torch.Tensor, order: int, kind: FilterKind = "power",
                 alpha: float = 0.0, on_hop: Callable[[], None] | None = None) -> torch.Tensor:
    """g(Â) H for the filter ``kind`` of degree ``order`` (``order`` 0 returns ``h``).

    ``on_hop`` is called before each sparse product: a caller with a deadline raises from it, so
    a long propagation of wide features can be cut between hops.
    """
    check_filter(kind)
    total = torch.zeros_like(h) if kind == "average" and order > 0 else None
    hop = h
    for _ in range(order):
        if on_hop is not None:
            on_hop()
        hop = propagate(adj, hop, 1)
        if total is not None:
            total += hop
    return hop if total is None else average(total, h, order, alpha)


def check_filter(kind: str) -> None:
    if kind not in ("power", "average"):
        raise ValueError(f"unknown graph filter {kind!r}: use 'power' or 'average'")


def average(total: torch.Tensor, h: torch.Tensor, order: int, alpha: float) -> torch.Tensor:
    """The ``average`` filter from the sum of hops 1..order and H (rows of them, or all)."""
    return (1 - alpha) / order * total + alpha * h
