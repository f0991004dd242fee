"""A peer's search (Optuna TPE under a wall-clock budget) and the final trainings of its choice.

Protocol, the same for every peer:

* The budget covers the whole search: the study's set-up, every trial's precomputation (cached for
  later trials of the same method only), training and scoring, and the sampler's own time. No
  trial starts after the deadline; a running one reads the clock after every epoch and every
  propagation hop (``loop.Limits``).
* A trial cut by the deadline is discarded (Optuna state PRUNED, user attribute ``cut``), unless
  no trial of the study is complete yet: then it is kept with its best score so far, marked
  ``cut``, so that every method has a result even when one trial outlasts the budget.
* Trials score the mean over ``trial_seeds`` of the selection criterion: validation accuracy
  (classification) or a label-free criterion (clustering). The median pruner watches the first
  seed's best score per epoch. The search data hides every label the criterion may not read.
* The chosen config is the complete trial with the highest score (ties: the earlier trial); the
  peer's settings from its authors' or PyG's example, when it has them, are the first trial, as
  DGNN's default portfolio is the first trials of its tune.
* The chosen config is then trained once per seed on the full data view, without a deadline;
  test figures are read there only, once per seed.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import optuna
import torch
from optuna.trial import TrialState

from benchmarks.peers.data import Cut, PeerData
from benchmarks.peers.loop import Limits
from dgnn.metrics import accuracy, clustering_scores, modularity

STARTUP_TRIALS = 8  # random trials before TPE models the history (DGNN's tune uses the same)
PRUNER = {"n_startup_trials": 4, "n_warmup_steps": 30}


@dataclass
class Outcome:
    """One run of one config with one seed."""

    score: float  # the selection criterion (never computed from hidden labels)
    predict: Callable[[], torch.Tensor]  # test-row classes (classify) or every node's cluster (cluster)
    cut: bool = False
    epochs: int = 0
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    space: Callable[[optuna.Trial], dict]  # draws one config (the peer's own hyper-parameters)
    run: Callable[[PeerData, dict, int, Limits], Outcome]
    example: dict | None = None  # the published / PyG-example settings: the first trial
    search: Callable | None = None  # the peer's own published selection rule instead of TPE
    criterion: str = "val_acc"


@dataclass
class Searched:
    params: dict
    score: float
    best_trial: int
    seconds: float
    trials: dict[str, int]
    log: list[dict]
    note: str = ""  # why a search of its own stopped


class NoResult(RuntimeError):
    pass


def _hook(trial: optuna.Trial) -> Callable[[int, float], None]:
    def report(epoch: int, best: float) -> None:
        trial.report(best, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {best:.4f} below the median")

    return report


def _objective(peer: Peer, data: PeerData, trial_seeds: list[int], limits: Limits):
    def objective(trial: optuna.Trial) -> float:
        params = peer.space(trial)
        trial.set_user_attr("params", params)
        holds_one = bool(trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        first = replace(limits, hops_may_cut=holds_one, report=_hook(trial))
        start, scores, out = time.monotonic(), [], None
        try:
            for i, seed in enumerate(trial_seeds):
                out = peer.run(data, params, seed, first if i == 0 else first.quiet())
                scores.append(out.score)
                if out.cut:
                    break
        except Cut:
            trial.set_user_attr("cut", True)
            raise optuna.TrialPruned("cut at the deadline while propagating") from None
        finally:
            trial.set_user_attr("seconds", time.monotonic() - start)
        if out.cut:
            trial.set_user_attr("cut", True)
            if holds_one:
                raise optuna.TrialPruned("cut at the deadline")
        return statistics.fmean(scores)

    return objective


def trial_log(study: optuna.Study) -> list[dict]:
    def state(t):
        if t.user_attrs.get("cut"):
            return "cut" if t.state == TrialState.PRUNED else "cut-kept"
        return t.state.name.lower()

    return [{"number": t.number, "state": state(t), "value": t.value, "seconds": t.user_attrs.get("seconds"),
             "params": t.user_attrs.get("params") or t.params or {"candidate": t.user_attrs.get("candidate")}} for t in study.get_trials(deepcopy=False)]


def counts(log: list[dict]) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in log:
        found[row["state"]] = found.get(row["state"], 0) + 1
    return found


def tpe_search(peer: Peer, data: PeerData, *, budget: float, trial_seeds: list[int], limits: Limits) -> Searched:
    """See the module docstring."""
    start = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=trial_seeds[0], n_startup_trials=STARTUP_TRIALS),
                                pruner=optuna.pruners.MedianPruner(**PRUNER))
    if peer.example is not None:
        study.enqueue_trial(peer.example)
    objective = _objective(peer, data, trial_seeds, replace(limits, deadline=start + budget))
    left = budget - (time.monotonic() - start)
    # RuntimeError: a config too large for memory fails its trial, not the benchmark
    study.optimize(objective, timeout=max(left, 0.0), catch=(RuntimeError,), gc_after_trial=False)
    seconds = time.monotonic() - start
    log = trial_log(study)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        raise NoResult(f"{peer.name}: no trial completed in {seconds:.1f}s")
    best = max(complete, key=lambda t: (t.value, -t.number))
    return Searched(best.user_attrs["params"], best.value, best.number, seconds, counts(log), log)


def search(peer: Peer, data: PeerData, *, budget: float, trial_seeds: list[int], limits: Limits) -> Searched:
    run = peer.search or tpe_search
    return run(peer, data, budget=budget, trial_seeds=trial_seeds, limits=limits)


def task_scores(task: str, data: PeerData, pred: torch.Tensor) -> dict[str, float]:
    """Test accuracy (classify: ``pred`` holds the test rows) or ACC / NMI / ARI against every
    labelled node plus the partition's modularity (cluster)."""
    if task == "classify":
        return {"test_acc": accuracy(pred, data.labels("test"))}
    known = data.y >= 0
    return clustering_scores(pred[known], data.y[known]) | {"modularity": modularity(data.edge_index, pred)}


def train_seeds(peer: Peer, data: PeerData, params: dict, seeds: list[int], task: str, limits: Limits) -> list[dict]:
    """The chosen config once per seed (no deadline); ``seconds`` is the run and its prediction,
    with this method's precomputation cached from its search, as DGNN's seeds share its inputs."""
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        out = peer.run(data, params, seed, replace(limits, deadline=math.inf, report=None))
        with torch.no_grad():
            pred = out.predict()
        seconds = time.perf_counter() - start
        rows.append({"seed": seed, "criterion": out.score, "seconds": seconds, "epochs": out.epochs,
                     **task_scores(task, data, pred), **out.info})
    return rows
