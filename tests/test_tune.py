"""The search behind ``dgnn tune`` and the portfolio default, on real Cora with a real Optuna
sqlite storage: spaces draw valid configs, candidates come first, test labels never steer the
search, a killed study resumes, and the portfolio reports its choice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from dgnn.config import CONFIG_DIR, Portfolio, RunConfig, TrainConfig, load_config
from dgnn.data import fetch
from dgnn.seeds import fit_warnings, train_seeds
from dgnn.inputs import load_inputs
from dgnn.tune.space import SEARCH_DIR, load_search_space
from dgnn.tune.study import Objective, finish, open_study, optimize

TINY_MODULE = {"width": 16, "order": 2, "lr": 0.02, "steps": 15, "batch_size": 140, "bias": True}
CANDIDATES = {
    "task": "classify",
    "candidates": {
        "smooth": {"task": "classify", "feature_norm": "row", "bp_count": 0, "modules": [TINY_MODULE]},
        "features": {"task": "classify", "feature_norm": "row", "bp_count": 0,
                     "modules": [TINY_MODULE | {"order": 0}]},
    },
}
SPACE = {
    "task": "classify",
    "candidates": "candidates.yaml",
    "num_modules": {"int": [1, 2]},
    "train": {"bp_count": {"int": [0, 1]}, "eta": {"float": [1.0, 100.0], "log": True}, "keep_own_loss": True},
    "modules": {"lr": {"float": [0.005, 0.05], "log": True}, "steps": 15, "batch_size": 140},
    "each_module": {"width": {"choice": [8, 16]}, "order": {"int": [0, 3]},
                    "filter": {"choice": ["power", "average"]}},
}


@pytest.fixture
def cora(shared_datasets, tmp_data_dir):
    fetch("cora", mirror=shared_datasets)
    return load_inputs("cora")


@pytest.fixture
def space_file(tmp_path) -> Path:
    (tmp_path / "candidates.yaml").write_text(yaml.safe_dump(CANDIDATES, sort_keys=False))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path / "space.yaml"


@pytest.mark.parametrize("task", ["classify", "cluster"])
def test_shipped_spaces_draw_valid_configs_of_every_depth(task):
    space = load_search_space(SEARCH_DIR / f"{task}.yaml")
    portfolio = load_config(space.candidates)
    assert isinstance(portfolio, Portfolio) and portfolio.task == task
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    depths, rounds = set(), set()
    for _ in range(40):
        config = space.suggest(study.ask())
        assert isinstance(config, TrainConfig) and config.task == task
        depths.add(config.num_modules)
        rounds.add(config.bp_count)
    assert len(depths) > 2 and max(rounds) >= 1  # multi-module, backward-trained configs are reachable


def test_space_rejects_unknown_fields_and_bad_ranges(tmp_path):
    for bad in ({"task": "classify", "modules": {"widht": 3}},
                {"task": "classify", "train": {"eta": {"float": [5, 1]}}},
                {"task": "classify", "train": {"eta": {"float": [1, 5], "choice": [1]}}}):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError):
            load_search_space(tmp_path / "s.yaml")


def _search(inputs, space_file, storage, trials=5):
    study = open_study("cora-test", storage, seed=0)
    optimize(study, Objective(inputs, load_search_space(space_file), seeds=[0], device="cpu"),
             trials=trials, budget_seconds=None)
    return study


def test_tiny_tune_tries_candidates_first_and_writes_a_loadable_config(cora, space_file, tmp_path):
    study = _search(cora, space_file, f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.user_attrs["candidate"] for t in trials[:2]] == ["smooth", "features"]
    assert all(t.params for t in trials[2:])  # then the sampler searches
    assert len([t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                 optuna.trial.TrialState.PRUNED)]) == 5
    for t in trials:  # a trial records training and validation figures only
        assert set(t.user_attrs.get("metrics", {})) <= {"train_acc", "val_acc", "val_loss", "val_macro_f1",
                                                         "val_roc_auc"}
    result = finish(study, cora, seeds=[0], device="cpu", keep=2)
    ranked = sorted((t for t in trials if t.value is not None), key=lambda t: -t.value)
    assert result.criterion == ranked[0].value and result.chosen == [list(result.kept)[0]]
    assert result.metrics["val_acc"] == pytest.approx(result.criterion)  # seed 0 scored the best trial
    assert len(result.kept) == 2 and result.config == TrainConfig.model_validate(ranked[0].user_attrs["config"])
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(result.run_config("cora", 0)))
    loaded = load_config(path)
    assert isinstance(loaded, Portfolio) and loaded.candidates == result.kept
    single = finish(study, cora, seeds=[0], device="cpu", keep=1).run_config("cora", 0)
    assert RunConfig.model_validate(single).train == result.config


def test_search_never_reads_test_labels(cora, space_file, tmp_path):
    """Same search on Cora whose test labels are all class 0: same trials, same scores."""
    def fingerprint(study):
        return [(t.number, t.params, t.value, t.user_attrs.get("metrics")) for t in study.trials]

    clean = fingerprint(_search(cora, space_file, f"sqlite:///{tmp_path / 'a.db'}", trials=4))
    y = cora.graph.y.clone()
    y[cora.graph.test_mask] = 0
    cora.graph.y = y
    assert fingerprint(_search(cora, space_file, f"sqlite:///{tmp_path / 'b.db'}", trials=4)) == clean


KILLED_TUNE = """
import sys
from dgnn.inputs import load_inputs
from dgnn.tune.space import load_search_space
from dgnn.tune.study import Objective, open_study, optimize
study = open_study("cora-test", sys.argv[1], seed=0)
optimize(study, Objective(load_inputs("cora"), load_search_space(sys.argv[2]), seeds=[0], device="cpu"),
         trials=1000, budget_seconds=None)
"""


def test_killed_study_resumes(cora, space_file, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study("cora-test", storage, seed=0)
    child = subprocess.Popen([sys.executable, "-c", KILLED_TUNE, storage, str(space_file)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        # kill it inside a trial that names its process (2 done, one running)
        while len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) < 2 or not any(
                "pid" in t.user_attrs for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))):
            assert child.poll() is None and time.monotonic() < deadline, "the child tune did not get going"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    done_before = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
    resumed = _search(cora, space_file, storage, trials=done_before + 2)
    states = [t.state for t in resumed.trials]
    assert optuna.trial.TrialState.RUNNING not in states  # the killed trial was closed as FAIL
    assert len([s for s in states if s in (optuna.trial.TrialState.COMPLETE,
                                           optuna.trial.TrialState.PRUNED)]) == done_before + 2
    # both candidates ran once each, even across the kill
    assert sorted(t.user_attrs["candidate"] for t in resumed.trials
                  if t.user_attrs.get("candidate") and t.state != optuna.trial.TrialState.FAIL) == ["features", "smooth"]


def test_portfolio_keeps_the_best_candidate_on_validation(cora, tmp_path):
    path = tmp_path / "candidates.yaml"
    path.write_text(yaml.safe_dump(CANDIDATES, sort_keys=False))
    summary = train_seeds("cora", load_config(path), [0, 1], verbose=False)
    for row in summary["per_seed"]:
        criteria = row["candidate_criteria"]
        assert row["chosen"] == max(criteria, key=criteria.get) and row["val_acc"] == criteria[row["chosen"]]
    assert summary["chosen"] == [r["chosen"] for r in summary["per_seed"]]


def test_default_classify_portfolio_holds_a_multi_module_backward_candidate():
    portfolio = load_config(CONFIG_DIR / "default-classify.yaml")
    assert isinstance(portfolio, Portfolio)
    assert any(c.num_modules >= 2 and c.bp_count >= 1 for c in portfolio.candidates.values())
    assert any(c.modules[0].order == 0 for c in portfolio.candidates.values())  # a feature-only layer


def test_a_model_that_cannot_fit_its_training_nodes_says_so(cora):
    weak = TrainConfig(modules=[{"width": 4, "order": 2, "lr": 1e-5, "steps": 1, "batch_size": 140}])
    result = cora.trainer(weak, 0, torch.device("cpu")).fit()
    warnings = fit_warnings(result, cora.graph.num_classes)
    assert any("training nodes" in w for w in warnings)


def test_cluster_search_scores_modularity_and_never_reads_labels(cora, tmp_path):
    """A clustering search scores modularity; with the labels shuffled over the nodes (k, the number
    of clusters, is the one thing taken from them), its trials are the same."""
    module = {"width": 16, "order": 2, "lr": 0.01, "steps": 10, "batch_size": 128, "activation": "identity"}
    space = {"task": "cluster", "num_modules": 1, "train": {"kmeans_restarts": 2, "bp_count": 0},
             "modules": module, "each_module": {"order": {"int": [1, 4]}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))

    def search(name):
        study = open_study(name, f"sqlite:///{tmp_path / (name + '.db')}", seed=0)
        optimize(study, Objective(cora, load_search_space(tmp_path / "space.yaml"), seeds=[0], device="cpu"),
                 trials=3, budget_seconds=None)
        return [(t.params, t.value, t.user_attrs["metrics"]) for t in study.trials]

    clean = search("clean")
    assert all(set(metrics) == {"modularity"} and value == metrics["modularity"] for _, value, metrics in clean)
    cora.graph.y = cora.graph.y[torch.randperm(len(cora.graph.y), generator=torch.Generator().manual_seed(1))]
    assert search("shuffled") == clean


def test_a_spent_budget_stops_the_search_after_its_first_complete_trial(cora, space_file, tmp_path):
    study = open_study("cora-budget", f"sqlite:///{tmp_path / 'optuna.db'}", seed=0)
    optimize(study, Objective(cora, load_search_space(space_file), seeds=[0], device="cpu"),
             trials=None, budget_seconds=1e-3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert finish(study, cora, seeds=[0], device="cpu").candidate == "smooth"


def test_a_deadline_cuts_a_propagation_between_hops_and_caches_nothing(cora):
    config = TrainConfig.model_validate(CANDIDATES["candidates"]["smooth"] | {
        "modules": [TINY_MODULE | {"order": 6, "filter": "average", "alpha": 0.1}]})
    hops = []

    def on_hop():
        hops.append(len(hops))
        if len(hops) == 3:
            raise optuna.TrialPruned("time budget spent")

    with pytest.raises(optuna.TrialPruned):
        cora.first_input(config, on_hop)
    assert len(hops) == 3 and cora.first_input_cost(config) is None
    cora.first_input(config, on_hop=lambda: hops.append(0))
    assert len(hops) == 3 + 6 and cora.first_input_cost(config) == 0.0


def test_finish_reuses_the_trials_own_fits_which_equal_a_retraining(cora, space_file, tmp_path):
    study = open_study("cora-reuse", f"sqlite:///{tmp_path / 'optuna.db'}", seed=0)
    objective = Objective(cora, load_search_space(space_file), seeds=[0], device="cpu")
    optimize(study, objective, trials=3, budget_seconds=None)
    assert set(objective.fits) == {t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    reused = finish(study, cora, seeds=[0], device="cpu", fits=objective.fits)
    assert reused.metrics == finish(study, cora, seeds=[0], device="cpu").metrics


def test_every_finished_trial_prints_one_line_with_the_best_so_far_and_the_budget():
    from dgnn.tune.progress import TrialLines

    lines = []

    def objective(trial):
        trial.report(0.5 + trial.number / 10, 0)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return 0.5 + trial.number / 10

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3, callbacks=[TrialLines(lines.append, trials=3, budget_seconds=120)])
    assert len(lines) == 3
    assert lines[0].startswith("trial 0 complete: criterion 0.5000 (best 0.5000, trial 0) in ")
    assert lines[0].endswith("s of 120s") and "; 1/3 trials, " in lines[0]
    assert lines[1].startswith("trial 1 pruned: criterion 0.6000 at pass 0 (best 0.5000, trial 0)")
    assert lines[2].startswith("trial 2 complete: criterion 0.7000 (best 0.7000, trial 2)") and "3/3 trials" in lines[2]
