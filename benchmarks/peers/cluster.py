"""The clustering peers; none reads a label to choose anything (their search data has none).

* ``ssgc-kmeans``: SSGC's averaged filter of order K on the features, then k-means; K, alpha and
  whether rows are L2-normalised first are chosen by TPE on the modularity of the partition.
* ``age-spectral``: AGE's Laplacian smoothing filter (I - L̃/λ)^k, L̃ the self-loop-renormalised
  symmetric Laplacian and λ its largest eigenvalue (AGE's choice of the filter's scale), then
  spectral clustering on the linear kernel of the smoothed features. AGE itself fixes k per
  dataset; k here follows AGC's published label-free rule (Zhang et al., IJCAI 2019; the same
  filter family): raise k until the intra-cluster distance first rises and keep the k before it.
* ``gae-kmeans``: Kipf & Welling's GAE (2-layer GCN encoder, inner-product decoder, PyG's
  negative-sampling reconstruction loss), then k-means on the embedding; its knobs by TPE on
  modularity.

The number of clusters is the number of classes, for every method (DGNN's included).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.peers.data import PeerData
from benchmarks.peers.loop import Limits, fit
from benchmarks.peers.search import Outcome, Peer, Searched, counts
from dgnn.metrics import kmeans, modularity

RESTARTS = 10  # k-means++ initialisations per clustering (DGNN's default cluster config uses 10)
MAX_ORDER = 60  # AGC's largest order
INTRA_SAMPLE = 1000  # rows per cluster the intra-cluster distance reads (seeded subsample)


def _partition(data: PeerData, embedding: torch.Tensor, seed: int, normalise: bool, **kw) -> Outcome:
    z = F.normalize(embedding, dim=1) if normalise else embedding
    labels = torch.as_tensor(kmeans(z, data.num_classes, RESTARTS, seed))
    return Outcome(modularity(data.edge_index, labels), lambda: labels, **kw)


def _run_ssgc(data: PeerData, params: dict, seed: int, limits: Limits) -> Outcome:
    _, total = data.smoother().at(params["K"], limits.on_hop)
    smoothed = params["alpha"] * data.x + (1 - params["alpha"]) / params["K"] * total
    return _partition(data, smoothed, seed, params["normalise"])


def _space_ssgc(trial) -> dict:
    return {"K": trial.suggest_int("K", 1, 64), "alpha": trial.suggest_float("alpha", 0.0, 0.3),
            "normalise": trial.suggest_categorical("normalise", [True, False])}


class Encoder(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, latent: int):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.conv1 = GCNConv(in_dim, hidden, normalize=False)
        self.conv2 = GCNConv(hidden, latent, normalize=False)

    def forward(self, x, adj):
        return self.conv2(F.relu(self.conv1(x, adj)), adj)


def _run_gae(data: PeerData, params: dict, seed: int, limits: Limits) -> Outcome:
    from torch_geometric.nn import GAE

    torch.manual_seed(seed)  # initialisation and the negative samples
    model = GAE(Encoder(data.x.shape[1], params["hidden"], params["latent"]))
    adj = data.gcn_adj()
    result = fit(model, lambda: model.recon_loss(model.encode(data.x, adj), data.edge_index),
                 [{"params": list(model.parameters()), "weight_decay": 0.0}], lr=params["lr"],
                 limits=limits, epochs=params["epochs"])
    with torch.no_grad():
        z = model.encode(data.x, adj)
    return _partition(data, z, seed, params["normalise"], cut=result.cut, epochs=result.epochs)


def _space_gae(trial) -> dict:
    return {"hidden": trial.suggest_categorical("hidden", [32, 64, 128, 256]),
            "latent": trial.suggest_categorical("latent", [16, 32, 64]),
            "lr": trial.suggest_float("lr", 1e-3, 5e-2, log=True),
            "epochs": trial.suggest_categorical("epochs", [100, 200, 400]),
            "normalise": trial.suggest_categorical("normalise", [True, False])}


# -- AGE's filter with AGC's order rule ---------------------------------------------------------


def _age_scale(data: PeerData) -> float:
    """λ_max of L̃ = I - D̃^-1/2 (A + I) D̃^-1/2 (AGE sets the filter's scale to 1 / λ_max)."""
    if "age_lambda" not in data.cache:
        import scipy.sparse as sp
        from scipy.sparse.linalg import eigsh

        a = data.gcn_adj()
        adj = sp.csr_matrix((a.values().double().numpy(), a.col_indices().numpy(), a.crow_indices().numpy()),
                            shape=a.shape)
        laplacian = sp.identity(a.shape[0], format="csr") - adj
        data.cache["age_lambda"] = float(eigsh(laplacian, k=1, which="LA", return_eigenvectors=False)[0])
    return data.cache["age_lambda"]


def _age_step(data: PeerData, h: torch.Tensor, scale: float) -> torch.Tensor:
    """One application of I - L̃/λ = (1 - 1/λ) I + Â/λ."""
    return (1 - 1 / scale) * h + (data.gcn_adj() @ h) / scale


def _spectral(h: torch.Tensor, k: int, seed: int) -> np.ndarray:
    """Ng-Jordan-Weiss spectral clustering on W = H Hᵀ (AGC's linear kernel) without forming W:
    the top eigenvectors of D^-1/2 W D^-1/2 are the left singular vectors of D^-1/2 H. AGC
    symmetrises |W|; with non-negative H (features and filter both are) |W| = W."""
    from scipy.sparse.linalg import svds

    z = h.double().numpy()
    if z.min() < 0:
        raise ValueError("age-spectral needs non-negative features (the linear kernel's shortcut)")
    degree = z @ z.sum(0)
    a = z / np.sqrt(np.maximum(degree, 1e-12))[:, None]
    u, _, _ = svds(a, k=k, v0=np.full(min(a.shape), 1.0 / np.sqrt(min(a.shape))))
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    return kmeans(u, k, RESTARTS, seed)


def intra_distance(h: torch.Tensor, labels: np.ndarray, seed: int = 0) -> float:
    """AGC's criterion: the mean over clusters of the mean pairwise distance inside the cluster,
    each cluster read through at most :data:`INTRA_SAMPLE` rows (a seeded subsample)."""
    rng = np.random.default_rng(seed)
    means = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) > INTRA_SAMPLE:
            members = rng.choice(members, INTRA_SAMPLE, replace=False)
        if len(members) > 1:
            rows = h[torch.as_tensor(members)]
            means.append(float(torch.cdist(rows, rows).sum()) / (len(members) * (len(members) - 1)))
    return float(np.mean(means))


def _smoothed(data: PeerData, k: int) -> torch.Tensor:
    if ("age", k) not in data.cache:
        h, scale = data.x, _age_scale(data)
        for _ in range(k):
            h = _age_step(data, h, scale)
        data.cache[("age", k)] = h
    return data.cache[("age", k)]


def _run_age(data: PeerData, params: dict, seed: int, limits: Limits) -> Outcome:
    h = _smoothed(data, params["k"])
    labels = torch.as_tensor(_spectral(h, data.num_classes, seed))
    return Outcome(-intra_distance(h, labels.numpy()), lambda: labels)


def _age_search(peer: Peer, data: PeerData, *, budget: float, trial_seeds: list[int], limits: Limits) -> Searched:
    """AGC's rule, one order per step (see the module docstring); stopped by the deadline, the
    order reached so far is kept (the distance has not risen yet)."""
    start = time.monotonic()
    scale, h, log, best, note = _age_scale(data), data.x, [], (None, -np.inf, None), "max order"
    for k in range(1, MAX_ORDER + 1):
        if k > 1 and time.monotonic() > start + budget:
            note = "deadline"
            break
        step = time.monotonic()
        h = _age_step(data, h, scale)
        score = float(np.mean([-intra_distance(h, _spectral(h, data.num_classes, s)) for s in trial_seeds]))
        log.append({"number": k - 1, "state": "complete", "value": score, "seconds": time.monotonic() - step,
                    "params": {"k": k}})
        if score < best[1]:
            note = "first rise of the intra-cluster distance"
            break
        best = (k, score, h)
    data.cache[("age", best[0])] = best[2]  # the final seeds start from the chosen order
    return Searched({"k": best[0], "lambda_max": scale}, best[1], best[0] - 1, time.monotonic() - start,
                    counts(log), log, note)


CLUSTER_PEERS = {p.name: p for p in [
    Peer("ssgc-kmeans", "SSGC + k-means", _space_ssgc, _run_ssgc, criterion="modularity"),
    Peer("age-spectral", "AGE filter + spectral (AGC order rule)", lambda trial: {}, _run_age,
         search=_age_search, criterion="-intra-cluster distance"),
    Peer("gae-kmeans", "GAE + k-means", _space_gae, _run_gae,
         {"hidden": 32, "latent": 16, "lr": 0.01, "epochs": 200, "normalise": False}, criterion="modularity"),
]}
