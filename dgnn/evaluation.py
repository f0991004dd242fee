"""What the trainer reports after a forward pass, from the labels and the split (pure functions).

Classification: train / validation / test accuracy, test macro-F1 (``macro_f1``), validation
macro-F1 and, where defined, validation and test ROC-AUC (``val_roc_auc``, ``roc_auc``); the
config's ``select_metric`` names the validation figure that selects. Clustering: k-means on the
embedding, its modularity (what selects: no label is read) and ACC / NMI / ARI against the labels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from dgnn.config import TrainConfig
from dgnn.metrics import accuracy, clustering_scores, kmeans, macro_f1, modularity, roc_auc, selection_scores


class Split(NamedTuple):
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def classification_scores(labels: torch.Tensor, proba: torch.Tensor, pred: torch.Tensor, split: Split
                          ) -> dict[str, float]:
    """Every classification figure of a pass but the validation loss (the module docstring)."""
    pred = pred.to(labels.device)
    val, test = split.val, split.test
    metrics = {"train_acc": accuracy(pred[split.train], labels[split.train]),
               "val_acc": accuracy(pred[val], labels[val]),
               "test_acc": accuracy(pred[test], labels[test]),
               "macro_f1": macro_f1(pred[test], labels[test])}
    metrics |= {k: v for k, v in selection_scores(proba[val], pred[val], labels[val], "val_").items()
                if k != "val_acc"}
    test_auc = roc_auc(proba[test], labels[test]) if len(test) else None
    return metrics if test_auc is None else metrics | {"roc_auc": test_auc}


def criterion_name(config: TrainConfig) -> str:
    """The metric a pass, a portfolio candidate and a tune trial are selected by."""
    if config.task == "cluster":
        return "modularity"
    return "val_acc" if config.select_metric == "acc" else f"val_{config.select_metric}"


def select_score(metric: str, proba: torch.Tensor, pred: torch.Tensor, true: torch.Tensor) -> float:
    """``metric`` ("acc", "macro_f1", "roc_auc") of these rows (accuracy where ROC-AUC is undefined)."""
    if metric == "macro_f1":
        return macro_f1(pred, true)
    score = roc_auc(proba, true) if metric == "roc_auc" else None
    return accuracy(pred, true) if score is None else score


def clustering_result(embedding: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor,
                      num_clusters: int, config: TrainConfig, seed: int) -> tuple[dict[str, float], torch.Tensor]:
    """(metrics, cluster of every node) of k-means on the embedding."""
    if config.kmeans_normalise:
        embedding = F.normalize(embedding, dim=1)
    pred = torch.from_numpy(kmeans(embedding, num_clusters, config.kmeans_restarts, seed))
    return partition_scores(pred, edge_index, labels), pred


def partition_scores(pred: torch.Tensor, edge_index: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Modularity of a partition on the graph (what selects) and ACC / NMI / ARI on the labelled nodes."""
    labelled = labels >= 0
    return {"modularity": modularity(edge_index, pred)} | clustering_scores(pred[labelled], labels[labelled])
