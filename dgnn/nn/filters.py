r"""Polynomial graph filters g(Â) for a module's propagated input P_l = g(Â) H_{l-1}.

Any polynomial in Â commutes with the input transform, g(Â)(H U) = (g(Â) H) U, so every filter
here keeps the precomputation property of the plain power Â^p.

* ``power``: :math:`\hat A^p H` (the paper);
* ``average``: :math:`(1-\alpha)\frac1p\sum_{k=1}^{p}\hat A^k H + \alpha H`, the averaged
  (SSGC-style) filter: a high order smooths strongly without collapsing every row to the
  same vector, and α keeps some of each node's own features;
* ``lazy``: :math:`(\alpha I + (1-\alpha)\hat A)^p H`, the lazy random walk (AGE's smoothing
  filter :math:`(I - \tfrac23 \tilde L)^p` at α = 1/3): a low-pass filter whose response falls
  smoothly, summed as :math:`\sum_j \binom pj \alpha^{p-j}(1-\alpha)^j \hat A^j H`, every weight
  positive, so the sum has no cancellation;
* ``bank``: several filters side by side, :math:`[g_1(\hat A) H \,\|\, \dots \,\|\, g_c(\hat A) H]`,
  each channel one of ``x`` (H), ``low<k>`` (:math:`\hat A^k H`), ``high<k>``
  (:math:`(I - \hat A)^k H`) and ``avg<k>`` (:math:`\frac1k\sum_{j=1}^{k}\hat A^j H`). The module's
  weight then learns how much of each to use, so a graph whose edges do not follow the classes
  can lean on ``x`` and the high-pass channels, a homophilous one on the low-pass ones. Each
  channel is a polynomial in Â, so the input transform applies channel by channel:
  :math:`[g_i(\hat A) H U]_i = [g_i(\hat A) H]_i (I_c \otimes U)`.
"""

from __future__ import annotations

from math import comb
from typing import Callable, Literal

import torch

from dgnn.config import parse_channel
from dgnn.propagation import propagate

FilterKind = Literal["power", "average", "lazy", "bank"]


def graph_filter(adj: torch.Tensor, h: torch.Tensor, order: int, kind: FilterKind = "power",
                 alpha: float = 0.0, on_hop: Callable[[], None] | None = None) -> torch.Tensor:
    """g(Â) H for the filter ``kind`` of degree ``order`` (``order`` 0 returns ``h``).

    ``on_hop`` is called before each sparse product: a caller with a deadline raises from it, so
    a long propagation of wide features can be cut between hops.
    """
    check_filter(kind)
    if kind in ("bank", "lazy"):
        raise ValueError(f"a {kind} filter is applied with module_filter(), which reads its config")
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
    if kind not in ("power", "average", "lazy", "bank"):
        raise ValueError(f"unknown graph filter {kind!r}: use 'power', 'average', 'lazy' or 'bank'")


def hop_weights(module) -> list[list[float]] | None:
    """Per output channel, the weights of :math:`\hat A^0 H, \hat A^1 H, \dots` that a ``bank``
    or ``lazy`` filter of ``module`` (a :class:`~dgnn.config.ModuleConfig`) sums; None for the
    filters computed hop by hop (``power``, ``average``)."""
    if module.filter == "bank":
        return bank_weights(module.channels)
    if module.filter == "lazy":
        p, a = module.order, module.alpha
        return [[comb(p, j) * a ** (p - j) * (1 - a) ** j for j in range(p + 1)]]
    return None


def bank_weights(channels: tuple[str, ...]) -> list[list[float]]:
    """Per channel, the weights of :math:`\hat A^0 H, \hat A^1 H, \dots` it sums (high<k> by the
    binomial expansion of :math:`(I - \hat A)^k`); all lists as long as the deepest channel."""
    parsed = [parse_channel(c) for c in channels]
    depth = max(hops for _, hops in parsed)
    out = []
    for kind, hops in parsed:
        w = [0.0] * (depth + 1)
        if kind == "x":
            w[0] = 1.0
        elif kind == "low":
            w[hops] = 1.0
        elif kind == "avg":
            w[1 : hops + 1] = [1.0 / hops] * hops
        else:
            w[: hops + 1] = [float(comb(hops, j) * (-1) ** j) for j in range(hops + 1)]
        out.append(w)
    return out


def combine_hops(hop: Callable[[int], torch.Tensor], weights: list[list[float]]) -> torch.Tensor:
    """The bank's channels side by side; ``hop(j)`` gives :math:`\hat A^j H` (rows of it, or all)."""
    channels = []
    for w in weights:
        total = None
        for j, weight in enumerate(w):
            if weight:
                total = hop(j) * weight if total is None else total.add_(hop(j), alpha=weight)
        channels.append(total)
    return torch.cat(channels, dim=1)


def weighted_hops(adj: torch.Tensor, h: torch.Tensor, weights: list[list[float]],
                  on_hop: Callable[[], None] | None = None) -> torch.Tensor:
    """The channels :math:`\sum_j w_{cj} \hat A^j H` side by side (:func:`hop_weights`)."""
    hops = [h]
    for _ in range(len(weights[0]) - 1):
        if on_hop is not None:
            on_hop()
        hops.append(propagate(adj, hops[-1], 1))
    return combine_hops(hops.__getitem__, weights)


def average(total: torch.Tensor, h: torch.Tensor, order: int, alpha: float) -> torch.Tensor:
    """The ``average`` filter from the sum of hops 1..order and H (rows of them, or all)."""
    return (1 - alpha) / order * total + alpha * h


def propagates(module) -> bool:
    """Whether ``module``'s filter reads any neighbour (an order-0 filter, or a bank of ``x`` only, does not)."""
    weights = hop_weights(module)
    return len(weights[0]) > 1 if weights else module.order > 0


def module_filter(adj: torch.Tensor, h: torch.Tensor, module, on_hop: Callable[[], None] | None = None
                  ) -> torch.Tensor:
    """A module's propagated input g(Â) H as its config (a :class:`~dgnn.config.ModuleConfig`) says."""
    weights = hop_weights(module)
    if weights is not None:
        return weighted_hops(adj, h, weights, on_hop)
    return graph_filter(adj, h, module.order, module.filter, module.alpha, on_hop)
