"""Contextual stochastic block model (CSBM) graphs for scale tests, generated in fixed-size chunks.

Names ``synthetic-csbm-<nodes>`` (``10k``, ``100k``, ``1m``, ``2.5m`` or a plain number) give a
graph with the defaults of :func:`csbm` (10 classes, average degree 10, homophily 0.8,
128 features, signal 1.0, seed 0), which every method classifies almost perfectly;
``synthetic-csbm-hard-<nodes>`` lowers the homophily to 0.5 and the feature signal to 0.1, so
features alone are near chance and the methods differ (figures in benchmarks/REPORT.md). A suffix
``-d<degree>`` sets the average degree (``synthetic-csbm-hard-10m-d20``: 10M nodes, 100M edges).
For graphs nobody tuned for, further suffixes, in this order, set ``-c<classes>``, ``-h<homophily
in %>``, ``-s<feature signal in %>`` and ``-m<minority class share in %>`` (two classes, the
second one that rare; the split is then a random 10 / 10 / 80 % of the nodes, as the class
shares fall, not 20 / 30 per class): ``synthetic-csbm-10k-c2-h10-s30`` is a heterophilous
two-class graph, ``synthetic-csbm-10k-c2-h60-s30-m20`` a skewed one. :data:`CHECKS` lists the
set the defaults are checked on. :func:`csbm` takes every parameter.
"""

from __future__ import annotations

import re

import numpy as np

from dgnn.data.build import build_graph
from dgnn.data.graph import Graph

PREFIX = "synthetic-csbm-"
HARD = {"homophily": 0.5, "feature_signal": 0.1}
PRESETS = ["synthetic-csbm-10k", "synthetic-csbm-100k", "synthetic-csbm-1m",
           "synthetic-csbm-hard-10k", "synthetic-csbm-hard-100k", "synthetic-csbm-hard-1m"]
# Graphs nobody tuned for: heterophilous (edges mostly across classes), noisy and skewed tasks.
CHECKS = ["synthetic-csbm-5k-c5-h10-s50", "synthetic-csbm-5k-c5-h30-s50", "synthetic-csbm-5k-c2-h10-s20",
          "synthetic-csbm-5k-c2-h20-s20", "synthetic-csbm-5k-c2-h60-s20-m20", "synthetic-csbm-5k-c2-h30-s40-m10"]
CHUNK = 1 << 20  # rows / edges drawn per step; fixed, so the output depends on the seed only
_NAME = re.compile(re.escape(PREFIX) + r"(hard-)?(\d+(?:\.\d+)?)([km]?)(?:-d(\d+))?"
                   r"(?:-c(\d+))?(?:-h(\d+))?(?:-s(\d+))?(?:-m(\d+))?")
SKEW_SPLIT = (0.1, 0.1)  # train and validation shares of a skewed graph's random split


def parse_name(name: str) -> int | None:
    """Number of nodes named by ``synthetic-csbm-[hard-]<nodes>``, or None for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return round(float(match[2]) * {"": 1, "k": 10**3, "m": 10**6}[match[3]])


def _features(rng: np.random.Generator, y: np.ndarray, num_classes: int, num_features: int,
              feature_signal: float) -> np.ndarray:
    """``feature_signal * mean[class] + noise``, both N(0, 1/num_features) per entry, by chunks."""
    num_nodes = len(y)
    scale = np.float32(1 / np.sqrt(num_features))
    means = rng.standard_normal((num_classes, num_features), dtype=np.float32) * scale
    x = np.empty((num_nodes, num_features), dtype=np.float32)
    for lo in range(0, num_nodes, CHUNK):
        hi = min(lo + CHUNK, num_nodes)
        rng.standard_normal(dtype=np.float32, out=x[lo:hi])  # in place: no chunk-sized temporaries
        x[lo:hi] *= scale
        for a in range(lo, hi, CHUNK // 16):
            b = min(a + CHUNK // 16, hi)
            x[a:b] += np.float32(feature_signal) * means[y[a:b]]
    return x


def _edges(rng: np.random.Generator, y: np.ndarray, members: np.ndarray, sizes: np.ndarray, starts: np.ndarray,
           num_edges: int, homophily: float) -> np.ndarray:
    """``num_edges`` edges from uniform sources, each to the source's class with probability
    ``homophily``, else to a uniformly chosen other class; ``members`` lists the nodes by class."""
    num_nodes, num_classes = len(y), len(sizes)
    edges = np.empty((2, num_edges), dtype=np.int64)
    for lo in range(0, num_edges, CHUNK):
        k = min(CHUNK, num_edges - lo)
        src = rng.integers(0, num_nodes, k)
        other = (y[src] + rng.integers(1, num_classes, k)) % num_classes
        cls = np.where(rng.random(k) < homophily, y[src], other)
        edges[0, lo : lo + k] = src
        edges[1, lo : lo + k] = members[starts[cls] + (rng.random(k) * sizes[cls]).astype(np.int64)]
    return edges


def csbm(
    num_nodes: int,
    num_classes: int = 10,
    avg_degree: float = 10.0,
    homophily: float = 0.8,
    num_features: int = 128,
    feature_signal: float = 1.0,
    seed: int = 0,
    name: str | None = None,
    split_seed: int = 0,
    minority: float | None = None,
) -> Graph:
    """A validated CSBM graph, deterministic for ``seed`` (the split uses ``split_seed``).

    Balanced classes (with ``minority``: two classes, the second that share of the nodes);
    ``num_nodes * avg_degree / 2`` edges, each with a uniform source and a destination in the
    source's class with probability ``homophily`` (else in a uniformly chosen other class);
    features ``feature_signal * mean[class] + noise``, class means and noise both N(0,
    1/num_features) per entry. Generation holds the graph plus one chunk; self-loops and repeated
    edges then follow the edge policy. ``name`` defaults to ``csbm-<num_nodes>``.
    """
    if num_classes < 2:
        raise ValueError("a CSBM needs at least 2 classes")
    if minority is not None and not (num_classes == 2 and 0 < minority < 0.5):
        raise ValueError("a skewed CSBM has 2 classes and a minority share in (0, 0.5)")
    rng = np.random.default_rng(seed)
    if minority is None:
        y = rng.permutation(np.arange(num_nodes) % num_classes)
    else:
        y = rng.permutation((np.arange(num_nodes) < round(minority * num_nodes)).astype(np.int64))
    members = np.argsort(y, kind="stable")
    sizes = np.bincount(y, minlength=num_classes)
    starts = np.cumsum(sizes) - sizes

    x = _features(rng, y, num_classes, num_features, feature_signal)
    edges = _edges(rng, y, members, sizes, starts, round(num_nodes * avg_degree / 2), homophily)

    params = {"num_nodes": num_nodes, "num_classes": num_classes, "avg_degree": avg_degree,
              "homophily": homophily, "num_features": num_features,
              "feature_signal": feature_signal, "seed": seed, "minority": minority}
    masks = None if minority is None else _random_split(num_nodes, split_seed)
    return build_graph(
        name or f"csbm-{num_nodes}",
        x,
        edges,
        y,
        source="csbm",
        num_classes=num_classes,
        masks=masks,
        split_kind=f"random {SKEW_SPLIT[0]:.0%} / {SKEW_SPLIT[1]:.0%} / rest, seed {split_seed}",
        split_seed=split_seed,
        meta={"generator": {"kind": "csbm", **params}},
    )


def _random_split(num_nodes: int, seed: int) -> np.ndarray:
    """[3, n] masks: a random :data:`SKEW_SPLIT` share trains and validates, the rest tests."""
    order = np.random.default_rng(seed).permutation(num_nodes)
    cuts = np.cumsum([round(share * num_nodes) for share in SKEW_SPLIT])
    masks = np.zeros((3, num_nodes), dtype=bool)
    for row, part in enumerate(np.split(order, cuts)):
        masks[row, part] = True
    return masks


def generate(name: str, split_seed: int = 0) -> Graph:
    """The graph a ``synthetic-csbm-[hard-]<nodes>[-d<degree>]`` name stands for (default or
    :data:`HARD` parameters)."""
    match = _NAME.fullmatch(name)
    params = dict(HARD) if match[1] else {}
    for group, key, scale in ((4, "avg_degree", 1), (5, "num_classes", None), (6, "homophily", 100),
                              (7, "feature_signal", 100), (8, "minority", 100)):
        if match[group]:
            params[key] = int(match[group]) if scale is None else float(match[group]) / scale
    return csbm(parse_name(name), name=name, split_seed=split_seed, **params)
