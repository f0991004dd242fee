r"""Correct and Smooth (Huang et al., ICLR 2021): post-processing of class probabilities over the graph.

With base probabilities Z (n x c), the training rows' one-hot labels Y_T and a propagation
:math:`S(F_0, \alpha)` = ``layers`` steps of :math:`F \leftarrow \alpha \hat A F + (1-\alpha) F_0`:

* correct: the training errors :math:`E_0 = [Y_T - Z_T; 0]` are spread, :math:`\hat E = S(E_0, \alpha_1)`,
  and added at the size of a typical training error ("autoscale"):
  :math:`\hat Z_i = Z_i + \sigma \hat E_i / \lVert \hat E_i \rVert_1`, σ the mean
  :math:`\lVert E_{0,j} \rVert_1` over training rows;
* smooth: :math:`G_0 = \hat Z` with the training rows set to their labels, :math:`G = S(G_0, \alpha_2)`.

α = 0 turns a half off (S returns F_0), so (0, 0) returns Z unchanged off the training rows.
Only training labels are read.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Hop = Callable[[torch.Tensor], torch.Tensor]  # F -> Â F


def spread(hop: Hop, start: torch.Tensor, alpha: float, layers: int) -> torch.Tensor:
    """``layers`` steps of F <- α Â F + (1-α) F_0 from F_0 = ``start`` (``start`` itself when α = 0)."""
    if alpha == 0:
        return start
    out = start
    for _ in range(layers):
        out = alpha * hop(out) + (1 - alpha) * start
    return out


def correct(hop: Hop, proba: torch.Tensor, train_idx: torch.Tensor, train_y: torch.Tensor,
            alpha: float, layers: int) -> torch.Tensor:
    """Z plus the training errors spread over the graph, autoscaled (the module docstring)."""
    if alpha == 0:
        return proba
    error = torch.zeros_like(proba)
    error[train_idx] = F.one_hot(train_y, proba.shape[1]).to(proba.dtype) - proba[train_idx]
    sigma = error[train_idx].abs().sum(1).mean()
    spread_error = spread(hop, error, alpha, layers)
    scale = sigma / spread_error.abs().sum(1, keepdim=True).clamp_min(1e-12)
    return proba + scale * spread_error


def smooth(hop: Hop, proba: torch.Tensor, train_idx: torch.Tensor, train_y: torch.Tensor,
           alpha: float, layers: int) -> torch.Tensor:
    """The probabilities with training rows set to their labels, smoothed over the graph."""
    start = proba.clone()
    start[train_idx] = F.one_hot(train_y, proba.shape[1]).to(proba.dtype)
    return spread(hop, start, alpha, layers)


def correct_and_smooth(hop: Hop, proba: torch.Tensor, train_idx: torch.Tensor, train_y: torch.Tensor,
                       correct_alpha: float, smooth_alpha: float, layers: int) -> torch.Tensor:
    """Both halves; (0, 0) returns ``proba`` off the training rows (and the labels on them)."""
    corrected = correct(hop, proba, train_idx, train_y, correct_alpha, layers)
    return smooth(hop, corrected, train_idx, train_y, smooth_alpha, layers)


def best_on_validation(hop: Hop, proba: torch.Tensor, train_idx: torch.Tensor, train_y: torch.Tensor,
                       correct_alphas, smooth_alphas, layers: int, score: Callable[[torch.Tensor], float]
                       ) -> tuple[float, float, torch.Tensor]:
    """(correct α, smooth α, probabilities) of the pair with the best ``score`` (a function of the
    post-processed probabilities that reads validation rows only); ties go to the first pair."""
    best = None
    for ca in correct_alphas:
        corrected = correct(hop, proba, train_idx, train_y, ca, layers)
        for sa in smooth_alphas:
            out = smooth(hop, corrected, train_idx, train_y, sa, layers)
            value = score(out)
            if best is None or value > best[0]:
                best = (value, ca, sa, out)
    return best[1:]
