"""DGNN's rows, through the library exactly as ``dgnn tune`` / ``dgnn train`` run it.

Tuned: ``dgnn.tune.study.tune`` with the task's shipped search space (read at run time, so the
levers added to it are searched too), the same budget and trial seeds as the peers; its budget
covers the whole tune, its own final scoring included, and a trial running at the deadline is cut
between SGD steps or propagation hops, except that its first trial always completes (the library's
rule: a tune always has a result). The configs it keeps are then trained once per seed with
``train_seeds``, each seed keeping the one with the best validation criterion. Default: the
task's default portfolio, no tune.
"""

from __future__ import annotations

import tempfile
import time

import optuna

from benchmarks.peers.rows import Settings, base, summary
from benchmarks.peers.search import trial_log
from dgnn.config import CONFIG_DIR, load_config
from dgnn.seeds import train_seeds
from dgnn.inputs import load_inputs
from dgnn.tune.space import default_search_space, load_search_space
from dgnn.tune.study import tune


def _per_seed(summary_: dict, task: str) -> list[dict]:
    rows = []
    for r in summary_["per_seed"]:
        row = {"seed": r["seed"], "seconds": r.get("select_seconds", r["train_seconds"]), "chosen": r.get("chosen")}
        if task == "classify":
            row |= {"criterion": r["val_acc"], "test_acc": r["test_acc"]}
        else:
            row |= {"criterion": r["modularity"]} | {k: r[k] for k in ("acc", "nmi", "ari", "modularity")}
        rows.append(row)
    return rows


def tuned_row(dataset: str, s: Settings) -> tuple[dict, list[dict]]:
    row = base(dataset, "dgnn-tuned", "DGNN, tuned", "dgnn", s)
    inputs = load_inputs(dataset)
    space_file = default_search_space(s.task)
    with tempfile.TemporaryDirectory(prefix="dgnn-bench-peers-") as tmp:
        url = f"sqlite:///{tmp}/optuna.db"
        start = time.monotonic()
        result = tune(inputs, load_search_space(space_file), storage_url=url, name=f"{dataset}-{s.task}",
                      budget_seconds=s.budget_seconds, seeds=s.trial_seeds, device="cpu")
        seconds = time.monotonic() - start
        log = trial_log(optuna.load_study(study_name=result.study, storage=url))
    done = train_seeds(dataset, result.to_train(), s.seeds, device="cpu", verbose=False, threads=1)
    details = result.to_dict()
    return (row | {"criterion": "val_acc" if s.task == "classify" else "modularity", "tune_seconds": seconds,
                   "trials": result.trials, "best_trial": result.best_trial, "best_value": result.criterion,
                   "search_space": str(space_file.relative_to(CONFIG_DIR.parent)),
                   "params": {k: details[k] for k in ("architecture", "kept", "candidate", "config")}}
            | summary(_per_seed(done, s.task), s.task)), log


def default_row(dataset: str, s: Settings) -> dict:
    path = CONFIG_DIR / f"default-{s.task}.yaml"
    row = base(dataset, "dgnn-default", "DGNN, default portfolio", "dgnn", s)
    done = train_seeds(dataset, load_config(path), s.seeds, device="cpu", verbose=False, threads=1)
    return (row | {"criterion": "val_acc" if s.task == "classify" else "modularity", "tune_seconds": 0.0,
                   "params": {"portfolio": path.name}} | summary(_per_seed(done, s.task), s.task))
