"""Batch sampling without replacement: distinct, outside the excluded rows, uniform, O(batch) memory."""

from __future__ import annotations

import pytest
import torch

from dgnn.sampling import sample_distinct, sample_edge_rows, sample_rows


@pytest.mark.parametrize("n,k", [(10, 6), (10, 8), (1000, 50), (10**7, 300)])  # both sides of n/2
def test_distinct_in_range_and_outside_exclude(n, k):
    exclude = torch.tensor([0, 3, 7])
    batch = sample_distinct(n, k, torch.Generator().manual_seed(0), exclude=exclude)
    assert len(batch) == min(k, n - 3) and len(torch.unique(batch)) == len(batch)
    assert batch.min() >= 0 and batch.max() < n and not torch.isin(batch, exclude).any()


def test_whole_pool_in_order_when_size_covers_it():
    generator = torch.Generator().manual_seed(0)
    assert sample_distinct(6, 10, generator, exclude=torch.tensor([2])).tolist() == [0, 1, 3, 4, 5]
    pool = torch.tensor([9, 4, 7])
    assert torch.equal(sample_rows(pool, 3, generator), pool)


def test_same_generator_state_same_batch():
    first = sample_distinct(10**6, 128, torch.Generator().manual_seed(4))
    assert torch.equal(first, sample_distinct(10**6, 128, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("n,k", [(40, 5), (40, 30)])  # rejection and permutation branches
def test_each_allowed_value_equally_often(n, k):
    """Counts of the allowed values over 20000 batches pass a chi-square test of uniformity
    (37 degrees of freedom; 70 is its 0.1 % quantile)."""
    generator, exclude = torch.Generator().manual_seed(1), torch.tensor([0, 39])
    counts = torch.zeros(n)
    for _ in range(20000):
        counts[sample_distinct(n, k, generator, exclude=exclude)] += 1
    expected = 20000 * k / (n - 2)
    assert counts[exclude].sum() == 0
    assert ((counts[1:39] - expected) ** 2 / expected).sum() < 70


def test_huge_graph_needs_no_node_sized_buffer():
    """10^12 nodes: any n-sized tensor (a permutation, a free-node mask) could not be allocated."""
    n, generator = 10**12, torch.Generator().manual_seed(0)
    edge_index = torch.tensor([[0, 1, 2, n - 1], [1, 0, n - 1, 2]])
    for batch in (sample_rows(n, 256, generator), sample_edge_rows(edge_index, n, 256, 1.0, generator)):
        assert len(torch.unique(batch)) == 256 and batch.max() < n
    assert torch.isin(edge_index.flatten(), sample_edge_rows(edge_index, n, 256, 1.0, generator)).all()
