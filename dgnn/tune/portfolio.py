"""The built-in default: train each candidate config of a :class:`~dgnn.config.Portfolio` and keep
the one with the best validation criterion (validation accuracy, or modularity for clustering).

It is a search of a few fixed points: graphs whose features carry the signal get a feature-only
module, homophilous graphs a smoothing one, and the choice is reported, never hidden.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from typing import TYPE_CHECKING

from dgnn.config import Portfolio, TrainConfig
from dgnn.results import FitResult

if TYPE_CHECKING:
    from dgnn.inputs import Inputs


@dataclass
class Choice:
    """The candidate kept for one seed, its fit, and every candidate's validation criterion."""

    name: str
    config: TrainConfig
    result: FitResult
    scores: dict[str, float]
    seconds: float


def choose(inputs: "Inputs", portfolio: Portfolio, seed: int, device, verbose: bool = False) -> Choice:
    """Fit every candidate with ``seed``; the best criterion wins, ties go to the first listed."""
    start = time.perf_counter()
    best: tuple[str, FitResult] | None = None
    scores: dict[str, float] = {}
    for name, config in portfolio.candidates.items():
        result = inputs.trainer(config, seed, device).fit()
        scores[name] = result.criterion
        if verbose:
            print(f"[seed {seed}] candidate {name}: criterion {result.criterion:.4f} "
                  f"({result.train_seconds:.2f}s)", file=sys.stderr, flush=True)
        if best is None or result.criterion > best[1].criterion:
            best = (name, result)
    name, result = best
    if verbose:
        print(f"[seed {seed}] chose {name} on validation", file=sys.stderr, flush=True)
    return Choice(name, portfolio.candidates[name], result, scores, time.perf_counter() - start)
