r"""Training labels as input features (the "label trick"), with no node seeing its own label.

The label features of a set S of training nodes are :math:`g(\hat A)\,Y_S`, the averaged filter
applied to their one-hot labels (zero rows elsewhere). While training, a random share of the
training nodes is S and the batch is drawn from the rest, so the label a batch row receives comes
from its neighbourhood only; a few such partitions are drawn and propagated once. At prediction time
S is every training node: validation and test nodes are never in S, so their labels are never read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dgnn.config import LabelInput, ModuleConfig


def label_filter(rule: LabelInput) -> ModuleConfig:
    """The averaged filter that spreads the label rows (as a module's filter, for the stores)."""
    return ModuleConfig(width=1, order=rule.order, filter="average", alpha=rule.alpha)


def one_hot_rows(labels: torch.Tensor, rows: torch.Tensor, num_classes: int) -> torch.Tensor:
    """n x c: the one-hot label of each node in ``rows``, zero elsewhere."""
    out = torch.zeros(len(labels), num_classes)
    out[rows] = F.one_hot(labels[rows], num_classes).float()
    return out


def partitions(pool: torch.Tensor, share: float, count: int, generator: torch.Generator
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` random (shown, targets) splits of the training ``pool``: ``share`` of it shown."""
    shown_count = min(len(pool) - 1, max(1, round(share * len(pool))))
    out = []
    for _ in range(count):
        order = pool[torch.randperm(len(pool), generator=generator)]
        out.append((order[:shown_count].sort().values, order[shown_count:].sort().values))
    return out
