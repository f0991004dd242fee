"""Mechanics of decoupled training on tiny synthetic graphs: operators, targets, U, losses, state."""

from __future__ import annotations

import pytest
import torch

from dgnn.config import TrainConfig
from dgnn.data.synthetic import csbm
from dgnn.nn.filters import graph_filter
from dgnn.nn.losses import EdgeLookup, reconstruction_loss
from dgnn.propagation import normalised_adjacency
from dgnn.trainer import DecoupledTrainer
from dgnn.schedule import schedule


@pytest.fixture(scope="module")
def graph():
    return csbm(120, num_classes=3, avg_degree=6, num_features=16, seed=0)


def dense_adjacency(graph) -> torch.Tensor:
    a = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=torch.float64)
    a[graph.edge_index[0], graph.edge_index[1]] = 1
    a += torch.eye(graph.num_nodes, dtype=torch.float64)
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def config(task: str, bp_count: int = 1, **extra) -> TrainConfig:
    module = {"steps": 6, "batch_size": 40, "lr": 0.01}
    modules = [{"width": 8, "order": 2, **module}, {"width": 4, "order": 1, **module}]
    return TrainConfig(task=task, modules=modules, bp_count=bp_count, eta=10, kmeans_restarts=2, **extra)


@pytest.mark.parametrize("kind,alpha", [("power", 0.0), ("average", 0.2)])
def test_filter_equals_dense_reference(graph, kind, alpha):
    adj, dense = normalised_adjacency(graph.edge_index, graph.num_nodes, dtype=torch.float64), dense_adjacency(graph)
    h = graph.x.double()
    powers = [torch.linalg.matrix_power(dense, k) for k in range(4)]
    expected = powers[3] @ h if kind == "power" else (1 - alpha) * sum(powers[1:]) @ h / 3 + alpha * h
    torch.testing.assert_close(graph_filter(adj, h, 3, kind, alpha), expected)


@pytest.mark.parametrize("kind", ["power", "average"])
def test_filter_commutes_with_input_transform(graph, kind):
    adj = normalised_adjacency(graph.edge_index, graph.num_nodes, dtype=torch.float64)
    h, u = graph.x.double(), torch.randn(graph.num_features, 5, dtype=torch.float64)
    torch.testing.assert_close(graph_filter(adj, h @ u, 3, kind, 0.1), graph_filter(adj, h, 3, kind, 0.1) @ u)


def test_backward_targets_are_expected_inputs(graph):
    trainer = DecoupledTrainer(graph, config("classify"), seed=0)
    plan = schedule(2, 1)
    for step in plan[:3]:  # FT0 m1, FT0 m2, BT1 m2
        trainer.run_step(step)
    assert plan[2].direction == "backward" and plan[2].module == 1
    u = trainer.modules[1].input_transform.detach()
    assert not torch.allclose(u, torch.eye(u.shape[0])), "BT must train U of module 2"
    torch.testing.assert_close(trainer.expected[1], trainer.inputs[1] @ u)


def test_module_one_has_no_transform_and_forward_pass_resets_u(graph):
    trainer = DecoupledTrainer(graph, config("classify"), seed=0)
    assert trainer.modules[0].input_transform is None
    plan = schedule(2, 1)
    for step in plan[:4]:  # through BT1 (both modules)
        trainer.run_step(step)
    assert trainer.modules[0].input_transform is None
    trainer.run_step(plan[4])  # FT1 m1 starts a forward pass
    u = trainer.modules[1].input_transform
    torch.testing.assert_close(u.detach(), torch.eye(u.shape[0]))
    assert not u.requires_grad


def test_reconstruction_loss_equals_dense_reference(graph):
    batch = torch.arange(30)
    lookup = EdgeLookup(graph.edge_index, graph.num_nodes)
    target = lookup.block(batch)
    dense = torch.zeros(graph.num_nodes, graph.num_nodes)
    dense[graph.edge_index[0], graph.edge_index[1]] = 1
    torch.testing.assert_close(target, dense[:30, :30])
    z = torch.randn(30, 4)
    loss = reconstruction_loss(z, target, mask_rate=0.3, generator=torch.Generator().manual_seed(1))

    hidden = torch.triu(torch.rand(30, 30, generator=torch.Generator().manual_seed(1)) < 0.3, diagonal=1)
    keep = ~(hidden | hidden.T) & ~torch.eye(30, dtype=torch.bool)
    pos_weight = keep.sum() / (target.bool() & keep).sum() - 1
    s = torch.sigmoid(z @ z.T)
    terms = -(pos_weight * target * torch.log(s) + (1 - target) * torch.log(1 - s))
    torch.testing.assert_close(loss, terms[keep].mean())


def test_edge_lookup_block_equals_dense_for_shuffled_batches(graph):
    """The neighbour-list lookup must match A[B, B] for any order of batch rows."""
    lookup = EdgeLookup(graph.edge_index, graph.num_nodes)
    dense = torch.zeros(graph.num_nodes, graph.num_nodes)
    dense[graph.edge_index[0], graph.edge_index[1]] = 1
    for seed in range(5):
        batch = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(seed))[: 20 + 20 * seed]
        assert torch.equal(lookup.block(batch), dense[batch][:, batch])


@pytest.mark.parametrize("task", ["classify", "cluster"])
def test_same_seed_same_metrics(graph, task):
    first = DecoupledTrainer(graph, config(task), seed=3).fit().metrics
    assert DecoupledTrainer(graph, config(task), seed=3).fit().metrics == first


def run_steps(trainer: DecoupledTrainer, steps) -> None:
    """What ``fit`` does per step, without its early stop or final restore."""
    for step in steps:
        trainer.run_step(step)
        if step.direction == "forward" and step.module == len(trainer.modules) - 1:
            trainer.end_forward_pass(step.pass_index)


@pytest.mark.parametrize("task", ["classify", "cluster"])
def test_state_dict_round_trip_mid_schedule(graph, task):
    cfg = config(task, bp_count=2)
    uninterrupted = DecoupledTrainer(graph, cfg, seed=1).fit().metrics
    plan = schedule(2, 2)
    first = DecoupledTrainer(graph, cfg, seed=1)
    run_steps(first, plan[:5])  # FT0, BT1, then the first step of FT1
    resumed = DecoupledTrainer(graph, cfg, seed=1)  # a resume rebuilds the trainer with its config and seed
    resumed.load_state_dict(first.state_dict())
    run_steps(resumed, plan[5:])
    assert resumed.best["metrics"] == uninterrupted


def test_edge_biased_batches_hold_more_edges_without_repeats():
    graph = csbm(2000, num_classes=3, avg_degree=4, num_features=8, seed=0)  # sparse: few edges per block
    uniform = DecoupledTrainer(graph, config("cluster"), seed=0)
    biased = DecoupledTrainer(graph, config("cluster", edge_batch_share=1.0), seed=0)
    again = DecoupledTrainer(graph, config("cluster", edge_batch_share=1.0), seed=0)
    edges = {"uniform": 0, "biased": 0}
    for _ in range(20):
        batch = biased._sample_block_rows(30)
        assert len(batch) == 30 and len(torch.unique(batch)) == 30
        assert torch.equal(batch, again._sample_block_rows(30))  # seeded
        edges["biased"] += int(biased.edges.block(batch).sum())
        edges["uniform"] += int(uniform.edges.block(uniform._sample_block_rows(30)).sum())
    assert edges["biased"] > 2 * edges["uniform"]
