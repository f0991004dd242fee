"""The accuracy levers of a config (consistency, label input, self-training, Correct and Smooth,
filter banks, class weights, the selection metric): what each computes, that none reads a
validation or test label while training, and that each keeps a run resumable and deterministic."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dgnn.config import ModuleConfig, TrainConfig
from dgnn.data.synthetic import csbm
from dgnn.nn.consistency import keep_weights
from dgnn.nn.correct_smooth import best_on_validation, correct_and_smooth
from dgnn.nn.filters import bank_weights, module_filter
from dgnn.nn.label_input import partitions
from dgnn.nn.module import DecoupledModule
from dgnn.propagation import normalised_adjacency
from dgnn.schedule import next_stage, schedule
from dgnn.self_training import pseudo_labels
from dgnn.trainer import DecoupledTrainer
from dgnn.tune.space import SearchSpace

LEVERS = {
    "consistency": {"consistency": {"views": 3, "batch_size": 64}},
    "label_input": {"label_input": {"order": 2, "splits": 2}},
    "self_training": {"self_training": {"stages": 1, "threshold": 0.5}},
    "correct_smooth": {"correct_smooth": {"correct_alphas": [0.0, 0.8], "smooth_alphas": [0.0, 0.8], "layers": 5}},
    "class_weight": {"class_weight": "balanced", "select_metric": "macro_f1"},
    "filter_bank": {"modules": [{"width": 8, "filter": "bank", "channels": ["x", "low2", "high1"], "steps": 8,
                                 "batch_size": 40},
                                {"width": 4, "filter": "bank", "channels": ["x", "low1"], "steps": 8,
                                 "batch_size": 40}]},
}


@pytest.fixture(scope="module")
def graph():
    return csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0, homophily=0.6, feature_signal=0.5)


def config(lever: str | None = None, **extra) -> TrainConfig:
    module = {"steps": 8, "batch_size": 40, "lr": 0.01}
    base = {"task": "classify", "bp_count": 1, "eta": 10, "keep_own_loss": True,
            "modules": [{"width": 8, "order": 2, **module}, {"width": 4, "order": 1, **module}]}
    return TrainConfig.model_validate(base | (LEVERS[lever] if lever else {}) | extra)


def with_labels(graph, rows, labels):
    """The graph with the labels of ``rows`` replaced (what must not change training)."""
    y = graph.y.clone()
    y[rows] = labels
    return dataclasses.replace(graph, y=y)


@pytest.mark.parametrize("lever", ["consistency", "label_input", "class_weight", "filter_bank"])
def test_training_never_reads_validation_or_test_labels(graph, lever):
    """Every weight after the first forward pass is the same when validation and test labels are
    scrambled: only the scores computed after training read them."""
    held_out = (graph.val_mask | graph.test_mask).nonzero().flatten()
    scrambled = with_labels(graph, held_out, (graph.y[held_out] + 1) % graph.num_classes)
    states = []
    for g in (graph, scrambled):
        trainer = DecoupledTrainer(g, config(lever), seed=0)
        for step in schedule(2, 1)[:2]:
            trainer.run_step(step)
        states.append([m.state_dict() for m in trainer.modules])
    for first, second in zip(*states):
        assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("lever", sorted(LEVERS))
def test_same_seed_same_metrics_and_a_resume_mid_schedule_equals_the_whole_fit(graph, lever):
    cfg = config(lever)
    whole = DecoupledTrainer(graph, cfg, seed=2).fit()
    assert DecoupledTrainer(graph, cfg, seed=2).fit().metrics == whole.metrics
    plan = schedule(2, 1, cfg.stages)
    first = DecoupledTrainer(graph, cfg, seed=2)
    for step in plan[:3]:
        first.advance(step)
    resumed = DecoupledTrainer(graph, cfg, seed=2)
    resumed.load_state_dict(first.state_dict())
    for step in plan[3:]:
        resumed.advance(step)
    resumed.restore_best()
    resumed.post_process()
    assert resumed.best["metrics"] == whole.metrics


def test_consistency_views_are_dropnode_propagations_computed_once(graph):
    cfg = config("consistency")
    trainer = DecoupledTrainer(graph, cfg, seed=0)
    trainer.run_step(schedule(2, 0)[0])
    replay = torch.Generator().manual_seed(0)  # the views are the trainer generator's first draws
    x = trainer.inputs[0]
    for view in trainer.views[0]:
        keep = keep_weights(graph.num_nodes, cfg.consistency.drop_rate, replay)
        assert set(keep.unique().tolist()) == {0.0, 2.0}
        assert torch.equal(view, module_filter(trainer.store.adj, x * keep[:, None], cfg.modules[0]))
    assert trainer.propagations == 1  # the views are made once, not per SGD step


def test_label_partitions_never_show_a_target_its_own_label():
    pool = torch.arange(0, 200, 2)
    for shown, targets in partitions(pool, 0.5, 4, torch.Generator().manual_seed(0)):
        assert not set(shown.tolist()) & set(targets.tolist())
        assert sorted(shown.tolist() + targets.tolist()) == pool.tolist()


def test_label_features_are_built_from_training_labels_only(graph):
    trainer = DecoupledTrainer(graph, config("label_input"), seed=0)
    trainer.run_step(schedule(2, 0)[0])
    features = trainer.labels_in["all"]
    train = graph.train_mask.nonzero().flatten()
    assert features.shape == (graph.num_nodes, graph.num_classes)
    far = ~graph.train_mask  # rows that get labels only through the graph
    assert features[train].sum() > 0 and torch.isfinite(features[far]).all()
    for shown, targets in zip(trainer.labels_in["splits"], trainer.labels_in["targets"]):
        assert not torch.isin(targets, (graph.val_mask | graph.test_mask).nonzero().flatten()).any()
        assert shown.shape == features.shape


def test_pseudo_labels_skip_training_and_validation_nodes_and_cap_per_class():
    proba = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.2, 0.8], [0.99, 0.01], [0.6, 0.4], [0.05, 0.95]])
    rule = TrainConfig.model_validate({"task": "classify", "modules": [{"width": 2}],
                                       "self_training": {"threshold": 0.7, "per_class": 1}}).self_training
    nodes, classes = pseudo_labels(proba, train_idx=torch.tensor([3]), val_idx=torch.tensor([5]), rule=rule)
    assert nodes.tolist() == [0, 2] and classes.tolist() == [0, 1]


def test_self_training_stages_are_steps_of_their_own(graph):
    cfg = config("self_training", pass_patience=1)
    plan = schedule(2, 1, cfg.stages)
    assert [s.name for s in plan[6:8]] == ["ST1-FT0-m1", "ST1-FT0-m2"] and len(plan) == 12
    assert next_stage(plan, 2) == 6 and next_stage(plan, 9) == 12
    result = DecoupledTrainer(graph, cfg, seed=0).fit()
    assert {p.pass_index for p in result.passes} <= {0, 1, 2, 3}


def test_correct_and_smooth_off_changes_nothing_and_is_chosen_on_validation(graph):
    adj = normalised_adjacency(graph.edge_index, graph.num_nodes)
    proba = torch.softmax(torch.randn(graph.num_nodes, 3, generator=torch.Generator().manual_seed(0)), 1)
    train = graph.train_mask.nonzero().flatten()
    out = correct_and_smooth(lambda z: adj @ z, proba, train, graph.y[train], 0.0, 0.0, 10)
    assert torch.equal(out[~graph.train_mask], proba[~graph.train_mask])
    val = graph.val_mask.nonzero().flatten()
    picks = []
    for y_test in (graph.y, with_labels(graph, graph.test_mask.nonzero().flatten(), 0).y):
        def val_accuracy(z):
            return float((z[val].argmax(1) == graph.y[val]).float().mean())
        ca, sa, _ = best_on_validation(lambda z: adj @ z, proba, train, y_test[train], (0.0, 0.5, 0.9),
                                       (0.0, 0.5, 0.9), 10, val_accuracy)
        picks.append((ca, sa))
    assert picks[0] == picks[1] and picks[0] != (0.0, 0.0)  # smoothing random guesses over the graph helps


def test_filter_bank_commutes_with_the_input_transform_channel_by_channel(graph):
    adj = normalised_adjacency(graph.edge_index, graph.num_nodes, dtype=torch.float64)
    spec = ModuleConfig(width=4, filter="bank", channels=("x", "low2", "high2", "avg3"))
    assert bank_weights(spec.channels) == [[1, 0, 0, 0], [0, 0, 1, 0], [1, -2, 1, 0], [0, 1 / 3, 1 / 3, 1 / 3]]
    h = graph.x.double()
    u = torch.randn(h.shape[1], h.shape[1], dtype=torch.float64)
    module = DecoupledModule(h.shape[1], 4, has_input_transform=True, channels=4).double()
    with torch.no_grad():
        module.input_transform.copy_(u)
    expected = module_filter(adj, h @ u, spec) @ module.weight
    torch.testing.assert_close(module(module_filter(adj, h, spec)), torch.relu(expected))


def test_selection_follows_the_configured_validation_metric(graph):
    result = DecoupledTrainer(graph, config(select_metric="roc_auc"), seed=0).fit()
    assert all(p.criterion == p.metrics["val_roc_auc"] for p in result.passes)
    assert {"val_macro_f1", "roc_auc", "macro_f1"} <= set(result.metrics)


def test_cluster_configs_refuse_label_levers():
    with pytest.raises(ValueError, match="need labels"):
        TrainConfig.model_validate({"task": "cluster", "modules": [{"width": 4}], "consistency": {}})


class FirstChoice:
    """A stand-in Optuna trial that takes the last choice and the upper bounds (levers on)."""

    def suggest_int(self, name, low, high, log=False):
        return high

    def suggest_float(self, name, low, high, log=False):
        return high

    def suggest_categorical(self, name, choices):
        return choices[-1]


def test_search_space_draws_levers_and_bank_channels():
    space = SearchSpace.model_validate({
        "task": "classify", "num_modules": 1,
        "each_module": {"width": 8, "filter": {"choice": ["average", "bank"]},
                        "channels": {"choice": ["x,low1", "x,low2,high1"]}},
        "levers": {"consistency": {"use": {"choice": [False, True]}, "weight": {"float": [0.5, 2.0]}},
                   "correct_smooth": {"use": False}}})
    drawn = space.suggest(FirstChoice())
    assert drawn.modules[0].channels == ("x", "low2", "high1")
    assert drawn.consistency.weight == 2.0 and drawn.correct_smooth is None
    with pytest.raises(ValueError, match="unknown lever"):
        SearchSpace.model_validate({"task": "classify", "levers": {"dropedge": {}}})


def test_cluster_refinement_reads_no_label_and_is_kept_only_where_modularity_rises(graph):
    module = {"width": 8, "order": 2, "steps": 20, "batch_size": 64, "lr": 0.01}
    cfg = TrainConfig.model_validate({"task": "cluster", "bp_count": 0, "kmeans_restarts": 2, "modules": [module],
                                      "cluster_refine": {"rounds": 2, "steps": 30}})
    shuffled = graph.y[torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(0))]
    relabelled = with_labels(graph, torch.arange(graph.num_nodes), shuffled)  # the same number of clusters
    fits = [DecoupledTrainer(g, cfg, seed=0) for g in (graph, relabelled)]
    for trainer in fits:
        trainer.fit()
    assert torch.equal(fits[0].predict(), fits[1].predict())  # the labels never steered it
    trainer = fits[0]
    post, metrics = trainer.best["post"], trainer.best["metrics"]
    assert post["kind"] == "refine-clusters" and post["criterion"] == "modularity"
    assert metrics["modularity"] >= metrics["pre_post_modularity"]
    assert post["kept"] == (metrics["modularity"] > metrics["pre_post_modularity"])


def test_the_default_portfolio_uses_the_edges_against_the_features_on_a_heterophilous_graph(tmp_data_dir):
    """Two classes, nine edges in ten across them: the filter bank wins validation and classifies what
    a features-only module cannot (measured here: 0.96 against 0.79 for the portfolio before it)."""
    from dgnn.config import default_config_path, load_config
    from dgnn.seeds import train_seeds

    portfolio = load_config(default_config_path("synthetic-csbm-5k-c2-h10-s20", "classify"))
    summary = train_seeds("synthetic-csbm-5k-c2-h10-s20", portfolio, [0], device="cpu", verbose=False, threads=1)
    assert summary["chosen"] == ["features-and-neighbours"]
    assert summary["test_acc_mean"] >= 0.9
    row = summary["per_seed"][0]
    assert row["candidate_criteria"]["features-and-neighbours"] > row["candidate_criteria"]["features-only"] + 0.1
