r"""Self-training of a clustering: the clusters' most certain members teach a classifier over the graph.

From the selected pass's embedding Z and its k-means partition, each round takes, per cluster, the
``share`` of members with the widest margin between their nearest and second-nearest cluster
(centroid distances in the first round, class probabilities after), trains a linear classifier on
:math:`S = \frac1K \sum_{k=1}^{K} \hat A^k\,\bar Z` (:math:`\bar Z`: rows scaled to unit length) with
those members' clusters as labels, and takes its argmax on every node as the next partition.
No ground-truth label is read: the clusters are their own teachers, and the graph spreads what the
certain members show to their neighbours. The trainer keeps the refined partition only when its
modularity is higher (:meth:`dgnn.trainer.DecoupledTrainer.post_process`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from dgnn.config import ClusterRefine
from dgnn.sampling import sample_rows


def margins_from_centroids(embedding: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per node, the distance to its second-nearest cluster centroid minus that to its nearest."""
    centroids = torch.zeros(k, embedding.shape[1]).index_add_(0, labels, embedding)
    centroids /= torch.bincount(labels, minlength=k).clamp_min(1)[:, None].float()
    nearest = torch.cdist(embedding, centroids).topk(2, dim=1, largest=False).values
    return nearest[:, 1] - nearest[:, 0]


def certain_members(labels: torch.Tensor, margins: torch.Tensor, k: int, share: float) -> torch.Tensor:
    """Per cluster, the ``share`` of its members with the widest margins (at least one each)."""
    chosen = []
    for c in range(k):
        members = (labels == c).nonzero().flatten()
        if len(members):
            order = torch.sort(margins[members], descending=True, stable=True).indices
            chosen.append(members[order[: max(1, int(share * len(members)))]])
    return torch.cat(chosen)


def refine(embedding: torch.Tensor, labels: torch.Tensor, k: int, smooth: Callable[[torch.Tensor], torch.Tensor],
           rule: ClusterRefine, generator: torch.Generator) -> torch.Tensor:
    """The partition after ``rule.rounds`` rounds (the module docstring); ``smooth`` is
    :math:`H \\mapsto \\frac1K\\sum_k \\hat A^k H`."""
    features = smooth(F.normalize(embedding, dim=1))
    margins = margins_from_centroids(embedding, labels, k)
    for _ in range(rule.rounds):
        teachers = certain_members(labels, margins, k, rule.share)
        classifier = torch.nn.Linear(features.shape[1], k)
        with torch.no_grad():  # a seeded start: the module's own init would draw from the global RNG
            classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=generator) * 0.01)
            classifier.bias.zero_()
        optimizer = torch.optim.Adam(classifier.parameters(), lr=rule.lr, weight_decay=5e-4)
        for _ in range(rule.steps):
            batch = sample_rows(teachers, rule.batch_size, generator)
            loss = F.cross_entropy(classifier(features[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            proba = classifier(features).softmax(1)
        top = proba.topk(2, dim=1).values
        labels, margins = proba.argmax(1), top[:, 0] - top[:, 1]
    return labels
