"""Pseudo-labels for a self-training stage, from the class probabilities of the best pass so far.

A node becomes a pseudo-labelled training node when it is neither a training nor a validation node
and its most probable class has probability at least ``threshold``; with ``per_class`` > 0 only
the most confident ``per_class`` of each predicted class are kept, so a dominant class cannot
flood the next stage. Validation nodes are never pseudo-labelled: validation then judges every
stage on labels no stage trained on.
"""

from __future__ import annotations

import torch

from dgnn.config import SelfTraining


def pseudo_labels(proba: torch.Tensor, train_idx: torch.Tensor, val_idx: torch.Tensor,
                  rule: SelfTraining) -> tuple[torch.Tensor, torch.Tensor]:
    """(nodes, their predicted classes) that the next stage trains on besides the training nodes."""
    confidence, predicted = proba.max(1)
    eligible = confidence >= rule.threshold
    eligible[train_idx] = False
    eligible[val_idx] = False
    nodes = eligible.nonzero().flatten()
    if rule.per_class > 0:
        kept = []
        for c in predicted[nodes].unique():
            members = nodes[predicted[nodes] == c]
            # stable sort: equal confidences keep node order, so the choice is deterministic
            order = torch.sort(confidence[members], descending=True, stable=True).indices
            kept.append(members[order[: rule.per_class]])
        nodes = torch.cat(kept).sort().values if kept else nodes
    return nodes, predicted[nodes]
