"""Reader for the Planetoid pickles (``ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}``).

Only call it on files whose SHA-256 was verified: the format is pickle.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from dgnn.data.build import build_graph
from dgnn.data.graph import Graph

PLANETOID_FILES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


def _unpickle(path: Path):
    # scipy >= 1.14 warns that the pickles name the old ``scipy.sparse.csr`` module: harmless.
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pickle.load(f, encoding="latin1")


def _dense(m) -> np.ndarray:
    return (m.toarray() if sp.issparse(m) else np.asarray(m)).astype(np.float32)


def read_planetoid(raw_dir: Path, name: str) -> Graph:
    """Assemble the standard public split: 20 labels a class for training, 500 validation, 1000 test."""
    raw_dir = Path(raw_dir)
    part = {k: _unpickle(raw_dir / f"ind.{name}.{k}") for k in PLANETOID_FILES if k != "test.index"}
    test_index = np.loadtxt(raw_dir / f"ind.{name}.test.index", dtype=np.int64)
    test_sorted = np.sort(test_index)

    x_rest, y_rest = _dense(part["allx"]), _dense(part["ally"])
    tx, ty = _dense(part["tx"]), _dense(part["ty"])
    # CiteSeer has test-range ids with no node behind them: they become featureless, unlabelled rows.
    span = test_sorted[-1] - test_sorted[0] + 1
    tx_full = np.zeros((span, tx.shape[1]), np.float32)
    ty_full = np.zeros((span, ty.shape[1]), np.float32)
    tx_full[test_sorted - test_sorted[0]] = tx
    ty_full[test_sorted - test_sorted[0]] = ty
    x = np.vstack([x_rest, tx_full])
    onehot = np.vstack([y_rest, ty_full])
    # Planetoid stores test rows in file order; put them at their node ids.
    x[test_index] = x[test_sorted]
    onehot[test_index] = onehot[test_sorted]
    y = np.where(onehot.sum(1) > 0, onehot.argmax(1), -1).astype(np.int64)

    n = x.shape[0]
    adjacency = part["graph"]
    src = np.repeat(np.fromiter(adjacency.keys(), np.int64), [len(v) for v in adjacency.values()])
    dst = np.fromiter((d for v in adjacency.values() for d in v), np.int64, count=len(src))

    num_train = part["y"].shape[0]
    masks = np.zeros((3, n), dtype=bool)
    masks[0, :num_train] = True
    masks[1, num_train : num_train + 500] = True
    masks[2, test_index] = True
    return build_graph(
        name,
        x,
        np.stack([src, dst]),
        y,
        source=f"ind.{name}.*",
        num_classes=onehot.shape[1],
        masks=masks,
        split_kind="planetoid public split",
    )
