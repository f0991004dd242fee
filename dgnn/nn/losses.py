r"""Losses of one module on a batch B of m rows.

* supervised: cross-entropy of the module's class head on labelled training rows;
* auto-encoder: weighted binary cross-entropy between :math:`\mathrm{sigmoid}(Z Z^\top)` and the
  sub-adjacency :math:`A[B, B]`, diagonal excluded, a random symmetric mask hiding a share of the
  entries, positives weighted by #kept / #kept positives - 1;
* target: :math:`\eta \lVert Z - T[B] \rVert_F^2 / m`;
* penalties: λ Σ‖·‖² (supervised) or λ Σ|·|₁ (auto-encoder) over W and U.

Only the m x m batch block is ever built, never an n x n matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class EdgeLookup:
    """Answers "which pairs of a batch are edges?" from the sorted edge list (no dense n x n matrix)."""

    def __init__(self, edge_index: torch.Tensor, num_nodes: int):
        self.num_nodes = num_nodes
        keys = torch.sort(edge_index[0].long() * num_nodes + edge_index[1].long()).values
        self.cols = keys % num_nodes
        self.crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=keys.device)
        self.crow[1:] = torch.cumsum(torch.bincount(keys // num_nodes, minlength=num_nodes), 0)
        # Row of each node in the current batch, -1 outside it; reset after every block so a
        # training step costs O(batch + its degrees), not O(n).
        self.position = torch.full((num_nodes,), -1, dtype=torch.long, device=keys.device)

    def block(self, batch: torch.Tensor) -> torch.Tensor:
        """Dense 0/1 block A[batch, batch] (m x m, float; ``batch`` without repeats).

        Only the batch rows' neighbour lists are read, O(Σ degree) instead of a search per pair.
        """
        batch = batch.to(self.crow.device)
        m = len(batch)
        position = self.position
        position[batch] = torch.arange(m, device=batch.device)
        starts, counts = self.crow[batch], self.crow[batch + 1] - self.crow[batch]
        rows = torch.repeat_interleave(torch.arange(m, device=batch.device), counts)
        offsets = torch.arange(len(rows), device=batch.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        cols = position[self.cols[torch.repeat_interleave(starts, counts) + offsets]]
        inside = cols >= 0
        out = torch.zeros(m, m, device=batch.device)
        out[rows[inside], cols[inside]] = 1.0
        position[batch] = -1
        return out


def reconstruction_loss(
    z: torch.Tensor, target: torch.Tensor, mask_rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Graph auto-encoder loss of batch embeddings ``z`` (m x d) against ``target`` = A[B, B]."""
    m = z.shape[0]
    keep = ~torch.eye(m, dtype=torch.bool, device=z.device)
    if mask_rate > 0:
        draw = torch.rand(m, m, generator=generator, device="cpu").to(z.device)
        hidden = torch.triu(draw < mask_rate, diagonal=1)
        keep &= ~(hidden | hidden.T)
    kept = keep.sum()
    positives = (target.bool() & keep).sum()
    pos_weight = (kept / positives.clamp_min(1) - 1).clamp_min(1.0)
    logits = z @ z.T
    loss = F.binary_cross_entropy_with_logits(
        logits[keep], target[keep], pos_weight=pos_weight.to(z.dtype), reduction="mean"
    )
    return loss


def target_loss(z: torch.Tensor, target_rows: torch.Tensor, eta: float) -> torch.Tensor:
    """η ‖Z - T[B]‖²_F / m."""
    return eta * (z - target_rows).pow(2).sum() / z.shape[0]


def penalty(params: list[torch.Tensor], strength: float, kind: str) -> torch.Tensor | float:
    """λ Σ‖p‖² (kind "l2") or λ Σ|p|₁ (kind "l1"); 0 when λ = 0."""
    if strength == 0:
        return 0.0
    if kind == "l2":
        return strength * sum(p.pow(2).sum() for p in params)
    return strength * sum(p.abs().sum() for p in params)
