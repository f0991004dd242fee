r"""Consistency regularisation over DropNode views of a module's input, each computed once.

A view drops a random share δ of the input's rows and propagates the rest,
:math:`\tilde P^{(s)} = g(\hat A)\,(M^{(s)} H) / (1-\delta)`, with :math:`M^{(s)}` a diagonal 0/1 row
mask; being a fixed matrix it is propagated once, like P, so the module still trains by SGD on
precomputed rows. An SGD step classifies its rows under two random views; on the unlabelled rows
both predictions :math:`p_1, p_2` are pulled towards their sharpened mean

.. math::
    \bar p = \tfrac12 (p_1 + p_2), \qquad
    \hat p_c = \bar p_c^{1/T} / \textstyle\sum_k \bar p_k^{1/T}, \qquad
    \mathcal L_{con} = \tfrac12 \textstyle\sum_{v} \lVert p_v - \hat p \rVert_2^2

(mean over rows; :math:`\hat p` is a constant target). This is GRAND's regulariser (Feng et al.,
NeurIPS 2020) restated for precomputed inputs, as GRAND+ does.
"""

from __future__ import annotations

import torch


def keep_weights(num_rows: int, drop_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Per row 0 (dropped, with probability ``drop_rate``) or 1 / (1 - drop_rate) (kept)."""
    kept = torch.rand(num_rows, generator=generator) >= drop_rate
    return kept.float() / (1 - drop_rate)


def consistency_loss(probabilities: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Mean squared distance of each view's class probabilities to their sharpened mean."""
    mean = torch.stack(probabilities).mean(0)
    sharp = mean.pow(1 / temperature)
    target = (sharp / sharp.sum(1, keepdim=True)).detach()
    return torch.stack([(p - target).pow(2).sum(1).mean() for p in probabilities]).mean()
