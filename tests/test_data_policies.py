"""The edge policy, the stratified split and the table schemas on small hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgnn.data import DataError
from dgnn.data.edges import undirected_edge_index
from dgnn.data.schemas import METRICS, validate
from dgnn.data.splits import stratified_split


def test_edge_policy_reports_what_it_removed():
    edges = np.array([[0, 1, 1, 2, 2, 3, 0], [1, 0, 1, 3, 3, 2, 1]])
    cleaned = undirected_edge_index(edges, 4)
    assert cleaned.edge_index.tolist() == [[0, 1, 2, 3], [1, 0, 3, 2]]
    assert cleaned.report() == {"self_loops_dropped": 1, "duplicates_merged": 2}
    assert cleaned.edge_weight is None


def test_edge_policy_keeps_the_largest_weight():
    edges = np.array([[0, 1, 0, 2], [1, 0, 1, 2]])
    cleaned = undirected_edge_index(edges, 3, weight=np.array([1.0, 4.0, 2.0, 9.0]))
    assert cleaned.edge_index.tolist() == [[0, 1], [1, 0]]
    assert cleaned.edge_weight.tolist() == [4.0, 4.0]


def test_stratified_split():
    y = np.array([0] * 100 + [1] * 9 + [-1] * 5 + [2] * 80)
    masks = stratified_split(y, seed=3)
    assert masks.sum(0).max() == 1 and not masks[:, y == -1].any()
    assert [masks[:, y == c].sum(1).tolist() for c in range(3)] == [[20, 30, 50], [3, 3, 3], [20, 30, 30]]
    assert np.array_equal(masks, stratified_split(y, seed=3))
    assert not np.array_equal(masks, stratified_split(y, seed=4))


def test_metrics_schema():
    good = pd.DataFrame({"module": [1, 1], "epoch": [0, 1], "split": ["val", "test"],
                         "metric": ["accuracy", "loss"], "value": [0.8, 0.4]})
    assert len(validate(good, METRICS, "metrics.csv", "")) == 2
    bad = good.assign(value=[np.nan, 0.1], split=["val", "dev"], epoch=[-1, 0])
    with pytest.raises(DataError) as err:
        validate(bad, METRICS, "metrics.csv", "Fix the writer.")
    msg = str(err.value)
    assert msg.startswith("3 problem(s): metrics.csv: ")
    assert "column 'value' must not be empty or NaN: 1 failing row, first rows 0 (nan)" in msg
    assert "column 'split'" in msg and "1 ('dev')" in msg and "column 'epoch' must be >= 0" in msg
    assert msg.endswith("Fix the writer.")
