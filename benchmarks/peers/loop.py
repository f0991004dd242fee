"""The one training loop every trained peer uses: full batch, Adam, early stopping, a deadline.

The deadline is read after every epoch (so every run trains at least one), and every propagation
hop may read it too (:meth:`Limits.on_hop`); what happens to a run it cuts is the search's
business (``search.py``): the loop only says so (``Fit.cut``) and keeps the best state so far.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from benchmarks.peers.data import Cut, PeerData
from dgnn.metrics import accuracy


@dataclass
class Limits:
    """How long and how far one run may train."""

    max_epochs: int = 500
    patience: int = 50
    deadline: float = math.inf  # time.monotonic() reading
    hops_may_cut: bool = False  # only once the search holds a complete trial: a cut hop loop has no result
    report: Callable[[int, float], None] | None = None  # the pruner's hook, (epoch, best score so far)

    def past(self) -> bool:
        return time.monotonic() > self.deadline

    def on_hop(self) -> None:
        if self.hops_may_cut and self.past():
            raise Cut("deadline reached while propagating")

    def quiet(self) -> Limits:
        """The same limits without the pruner (the other trial seeds only average the score)."""
        return Limits(self.max_epochs, self.patience, self.deadline, self.hops_may_cut, None)


@dataclass
class Fit:
    score: float  # best selection score (validation accuracy), or nan without one
    best_epoch: int
    epochs: int
    cut: bool  # the deadline stopped it before its own stopping rule


def fit(module: torch.nn.Module, loss: Callable[[], torch.Tensor], groups: list[dict], *, lr: float,
        limits: Limits, score: Callable[[], float] | None = None, epochs: int | None = None) -> Fit:
    """Train ``module`` on ``loss`` (full batch); with ``score``, keep the epoch with the best one
    (ties: the earlier) and stop ``limits.patience`` epochs after it; without, run ``epochs``."""
    optimizer = torch.optim.Adam(groups, lr=lr)
    last = epochs or limits.max_epochs
    best, best_epoch, state, epoch, cut = -math.inf, 0, None, 0, False
    for epoch in range(1, last + 1):
        module.train()
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()
        if score is not None:
            module.eval()
            with torch.no_grad():
                value = score()
            if value > best:
                best, best_epoch, state = value, epoch, {k: v.clone() for k, v in module.state_dict().items()}
            if limits.report is not None:
                limits.report(epoch, best)
            if epoch - best_epoch >= limits.patience:
                break
        if epoch < last and limits.past():
            cut = True
            break
    if state is not None:
        module.load_state_dict(state)
    module.eval()
    return Fit(best if score is not None else math.nan, best_epoch or epoch, epoch, cut)


def fit_classifier(module: torch.nn.Module, logits: Callable[[str], torch.Tensor], data: PeerData,
                   params: dict, limits: Limits, groups: list[dict] | None = None) -> Fit:
    """:func:`fit` with cross-entropy on the training rows and validation accuracy as the score;
    ``logits(split)`` gives the model's logits for the rows of ``split``."""
    y_train, y_val = data.labels("train"), data.labels("val")
    groups = groups or [{"params": list(module.parameters()), "weight_decay": params["weight_decay"]}]
    return fit(module, lambda: F.cross_entropy(logits("train"), y_train), groups, lr=params["lr"],
               limits=limits, score=lambda: accuracy(logits("val").argmax(1), y_val))
