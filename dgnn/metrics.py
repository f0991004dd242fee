"""Evaluation: classification accuracy / macro-F1, clustering ACC / NMI / ARI, modularity, k-means."""

from __future__ import annotations

import statistics

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score, roc_auc_score


def mean_std(values) -> tuple[float | None, float | None]:
    """Mean and population standard deviation over seeds; missing values (None) are skipped and
    none at all gives (None, None)."""
    values = [v for v in values if v is not None]
    return (statistics.fmean(values), statistics.pstdev(values)) if values else (None, None)


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def accuracy(pred, true) -> float:
    pred, true = _np(pred), _np(true)
    return float((pred == true).mean()) if len(true) else float("nan")


def macro_f1(pred, true) -> float:
    return float(f1_score(_np(true), _np(pred), average="macro", zero_division=0))


def roc_auc(proba, true) -> float | None:
    """ROC-AUC of class probabilities (n x c): for two classes that of class 1, else the macro
    mean of one-vs-rest AUCs over the classes present; None when fewer than two classes are present
    (undefined)."""
    proba, true = _np(proba).astype(np.float64), _np(true)
    present = np.unique(true)
    if len(present) < 2:
        return None
    if proba.shape[1] == 2:
        return float(roc_auc_score(true, proba[:, 1]))
    return float(np.mean([roc_auc_score(true == c, proba[:, c]) for c in present]))


def selection_scores(proba, pred, true, prefix: str) -> dict[str, float]:
    """Accuracy, macro-F1 and (where defined) ROC-AUC of one split, keyed ``<prefix>acc`` etc."""
    scores = {f"{prefix}acc": accuracy(pred, true), f"{prefix}macro_f1": macro_f1(pred, true)}
    auc = roc_auc(proba, true)
    if auc is not None:
        scores[f"{prefix}roc_auc"] = auc
    return scores


def clustering_accuracy(pred, true) -> float:
    """Accuracy under the best one-to-one map of clusters to classes (Hungarian matching)."""
    pred, true = _np(pred), _np(true)
    size = max(pred.max(), true.max()) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (pred, true), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(true))


def clustering_scores(pred, true) -> dict[str, float]:
    """ACC, NMI (arithmetic normalisation) and ARI against ground-truth classes."""
    pred, true = _np(pred), _np(true)
    return {
        "acc": clustering_accuracy(pred, true),
        "nmi": float(normalized_mutual_info_score(true, pred, average_method="arithmetic")),
        "ari": float(adjusted_rand_score(true, pred)),
    }


def modularity(edge_index, labels) -> float:
    """Newman modularity of a partition; an unsupervised criterion for choosing a clustering."""
    src, dst = _np(edge_index)
    labels = _np(labels)
    two_m = len(src)
    if two_m == 0:
        return 0.0
    k = labels.max() + 1
    inside = np.bincount(labels[src][labels[src] == labels[dst]], minlength=k).sum() / two_m
    degree_share = np.bincount(labels, weights=np.bincount(src, minlength=len(labels)), minlength=k) / two_m
    return float(inside - (degree_share**2).sum())


def kmeans(embedding, k: int, restarts: int, seed: int) -> np.ndarray:
    """k-means labels, best of ``restarts`` k-means++ initialisations (deterministic for a seed)."""
    model = KMeans(n_clusters=k, n_init=restarts, random_state=seed)
    return model.fit_predict(_np(embedding).astype(np.float64))
