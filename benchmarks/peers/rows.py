"""One result row per (dataset, method): how each kind of method is measured, in the same shape.

Per-seed entries all have ``seed``, ``criterion`` (validation accuracy, or the clustering's
label-free criterion), ``seconds`` and the test figures (``test_acc``; or ``acc``, ``nmi``,
``ari``, ``modularity``); the row summarises them (mean and population std over the seeds).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from benchmarks import methods
from benchmarks.peers.data import PeerData
from benchmarks.peers.loop import Limits
from benchmarks.peers.search import NoResult, Peer, search, train_seeds
from dgnn.metrics import mean_std

TEST_METRICS = {"classify": ("test_acc",), "cluster": ("acc", "nmi", "ari", "modularity")}
EXAMPLES = {"gcn-example": ("gcn", "GCN, PyG example (hidden 16, 200 epochs)"),
            "sgc-example": ("sgc", "SGC, PyG example (K 2, 100 epochs)"),
            "sign-example": ("sign", "SIGN, example settings (K 2, hidden 64, 200 epochs)"),
            "mlp-example": ("mlp", "MLP, example settings (hidden 64, 200 epochs)")}


@dataclass(frozen=True)
class Settings:
    task: str
    budget_seconds: float
    seeds: list[int]
    trial_seeds: list[int]
    max_epochs: int = 500
    patience: int = 50

    def limits(self) -> Limits:
        return Limits(self.max_epochs, self.patience)


def summary(per_seed: list[dict], task: str) -> dict:
    row = {}
    for name in TEST_METRICS[task]:
        row[f"{name}_mean"], row[f"{name}_std"] = mean_std(r[name] for r in per_seed)
    if task == "classify":  # the names the tables and the issue use
        row["test_mean"], row["test_std"] = row.pop("test_acc_mean"), row.pop("test_acc_std")
        row["val_mean"] = mean_std(r["criterion"] for r in per_seed)[0]
    else:
        row["criterion_mean"] = mean_std(r["criterion"] for r in per_seed)[0]
    row["train_seconds_mean"] = mean_std(r["seconds"] for r in per_seed)[0]
    return row | {"per_seed": per_seed}


def machine() -> dict:
    return {"loadavg_1m": os.getloadavg()[0], "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def base(dataset: str, method: str, label: str, kind: str, s: Settings) -> dict:
    return {"dataset": dataset, "task": s.task, "method": method, "label": label, "kind": kind,
            "budget_seconds": s.budget_seconds, "seeds": s.seeds, "trial_seeds": s.trial_seeds,
            "max_epochs": s.max_epochs, "patience": s.patience, "threads": 1, "loadavg_1m_start": os.getloadavg()[0]}


def peer_row(peer: Peer, dataset: str, data: PeerData, s: Settings) -> tuple[dict, list[dict]]:
    """Search on the view without the labels the search may not read, then train the choice once
    per seed on the full view (the only place test labels are read)."""
    row = base(dataset, peer.name, peer.label, "tuned", s) | {"criterion": peer.criterion}
    view = data.visible("train", "val") if s.task == "classify" else data.visible()
    try:
        found = search(peer, view, budget=s.budget_seconds, trial_seeds=s.trial_seeds, limits=s.limits())
    except NoResult as err:
        return row | {"error": str(err)}, []
    per_seed = train_seeds(peer, data, found.params, s.seeds, s.task, s.limits())
    return (row | {"tune_seconds": found.seconds, "trials": found.trials, "best_trial": found.best_trial,
                   "best_value": found.score, "params": found.params, "note": found.note}
            | summary(per_seed, s.task)), found.log


def example_row(method: str, dataset: str, graph, s: Settings) -> dict:
    """The untuned example settings through ``benchmarks/methods.py`` (fixed epochs, the epoch
    with the best validation accuracy kept), as in the other benchmarks of this folder."""
    peer, label = EXAMPLES[method]
    row = base(dataset, method, label, "example", s)
    per_seed = []
    for seed in s.seeds:
        r = methods.METHODS[peer](graph, seed, feature_norm="row", progress=lambda _: None)
        per_seed.append({"seed": seed, "criterion": r.val_acc, "test_acc": r.test_acc,
                         "seconds": r.train_seconds, "epochs": r.epochs_run, "best_epoch": r.best_epoch})
    return row | {"tune_seconds": 0.0, "params": {"settings": label}} | summary(per_seed, s.task)
