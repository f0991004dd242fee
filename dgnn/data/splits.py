"""Seeded stratified train/validation/test split (the usual 20 / 30 per class, rest test)."""

from __future__ import annotations

import numpy as np

TRAIN_PER_CLASS = 20
VAL_PER_CLASS = 30


def stratified_split(
    y: np.ndarray,
    seed: int,
    train_per_class: int = TRAIN_PER_CLASS,
    val_per_class: int = VAL_PER_CLASS,
) -> np.ndarray:
    """Boolean masks [3, n] (train, val, test) over the labelled nodes (``y >= 0``).

    Per class, in an order drawn from ``np.random.default_rng(seed)``, the first
    ``min(train_per_class, size // 3)`` nodes train, the next ``min(val_per_class, (size - train) // 2)``
    validate and the rest test: the usual 20 / 30 / rest for every class of 80 or more nodes,
    and all three splits still non-empty for small classes (UAI2010 has one of 9 nodes).
    """
    y = np.asarray(y)
    perm = np.random.default_rng(seed).permutation(y.size)
    perm = perm[y[perm] >= 0]
    order = perm[np.argsort(y[perm], kind="stable")]
    labels = y[order]
    sizes = np.bincount(labels)
    rank = np.arange(order.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    class_train = np.minimum(train_per_class, sizes // 3)
    n_train = class_train[labels]
    n_val = np.minimum(val_per_class, (sizes - class_train) // 2)[labels]
    masks = np.zeros((3, y.size), dtype=bool)
    masks[0, order[rank < n_train]] = True
    masks[1, order[(rank >= n_train) & (rank < n_train + n_val)]] = True
    masks[2, order[rank >= n_train + n_val]] = True
    return masks
