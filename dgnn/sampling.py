r"""Batches of rows for SGD steps, in work that follows the batch size, not the graph size.

:func:`sample_distinct` draws k distinct integers from :math:`\{0, \dots, n-1\} \setminus E` by
rejection: draw the missing count uniformly, keep the new distinct values, repeat. While
:math:`k + |E| \le n / 2` a draw is rejected with probability at most 1/2, so the expected work is
:math:`O((k + |E|) \log k)` whatever n is; above that bound n itself is :math:`O(k + |E|)` and one
permutation of the allowed values is as cheap.
"""

from __future__ import annotations

import torch


def sample_distinct(n: int, k: int, generator: torch.Generator,
                    exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``k`` distinct uniform values of ``range(n)`` outside ``exclude`` (int64, on the CPU).

    Every k-subset of the allowed values is equally likely; the order of the result carries no
    meaning, except that all allowed values come in increasing order when there are no more than
    ``k`` of them.
    """
    taken = torch.empty(0, dtype=torch.long) if exclude is None else exclude.long().cpu()
    if 2 * (k + len(taken)) > n:
        allowed = torch.ones(n, dtype=torch.bool)
        allowed[taken] = False
        rest = allowed.nonzero().squeeze(1)
        if k >= len(rest):
            return rest
        return rest[torch.randperm(len(rest), generator=generator)[:k]]
    chosen = torch.empty(0, dtype=torch.long)
    while len(chosen) < k:
        # Exactly the shortfall is drawn, so the new distinct values never overshoot k and none
        # has to be dropped (dropping by position would favour small ids after torch.unique).
        draws = torch.unique(torch.randint(n, (k - len(chosen),), generator=generator))
        chosen = torch.cat([chosen, draws[~torch.isin(draws, torch.cat([taken, chosen]))]])
    return chosen


def sample_rows(pool: torch.Tensor | int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` uniform rows of ``pool`` without replacement (an int n stands for ``range(n)``);
    the whole pool, in its order, when ``size`` covers it."""
    if isinstance(pool, int):
        return sample_distinct(pool, size, generator)
    return pool[sample_distinct(len(pool), size, generator)]


def sample_edge_rows(edge_index: torch.Tensor, num_nodes: int, size: int, share: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Auto-encoder batch: the endpoints of ``share * size / 2`` uniform edges, filled up with
    uniform other nodes to ``size`` rows without repeats (plain uniform rows when ``share`` is 0)."""
    if share == 0 or size >= num_nodes:
        return sample_rows(num_nodes, size, generator)
    picks = torch.randint(edge_index.shape[1], (max(1, round(share * size / 2)),), generator=generator)
    ends = torch.unique(edge_index[:, picks].reshape(-1))[:size]
    return torch.cat([ends, sample_distinct(num_nodes, size - len(ends), generator, exclude=ends)])
