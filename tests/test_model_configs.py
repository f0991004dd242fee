"""Shipped configs load, the faithful-paper mode stays selectable, and dropout masks behave."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dgnn.config import CONFIG_DIR, Portfolio, TrainConfig, default_config_path, load_config
from dgnn.data.synthetic import csbm
from dgnn.nn.module import dropout_mask
from dgnn.trainer import DecoupledTrainer
from dgnn.schedule import Step

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads(path: Path):
    config = load_config(path)
    trains = config.candidates.values() if isinstance(config, Portfolio) else [config.train]
    assert all(train.num_modules >= 1 for train in trains)


@pytest.mark.parametrize("dataset", ["cora", "citeseer", "pubmed"])
@pytest.mark.parametrize("task", ["classify", "cluster"])
def test_every_target_has_its_own_config(dataset, task):
    assert default_config_path(dataset, task).name == f"{dataset}-{task}.yaml"


@pytest.mark.parametrize("name", ["paper-cora-classify.yaml", "paper-cora-cluster.yaml"])
def test_paper_configs_are_faithful(name):
    train = load_config(CONFIG_DIR / name).train
    assert [m.width for m in train.modules] == [128, 64, 32]
    assert not train.keep_own_loss and train.module_patience == 0 and train.pass_patience == 0
    assert all(m.filter == "power" and not m.bias and m.input_dropout == 0 for m in train.modules)
    assert not train.kmeans_normalise


@pytest.mark.parametrize("dataset", ["citeseer", "pubmed"])
def test_paper_configs_keep_the_authors_ranges(dataset):
    """CiteSeer/PubMed: two modules 256 -> 128, order 2 on the second, eta 10..100, bp_count 3..5, faithful."""
    train = load_config(CONFIG_DIR / f"paper-{dataset}-classify.yaml").train
    assert [(m.width, m.order, m.filter) for m in train.modules] == [(256, 1, "power"), (128, 2, "power")]
    assert 10 <= train.eta <= 100 and 3 <= train.bp_count <= 5
    assert not train.keep_own_loss and train.module_patience == 0 and train.pass_patience == 0


def test_faithful_mode_drops_own_loss_once_a_target_exists():
    """With keep_own_loss=False a module below the last trains on the target term only."""
    graph = csbm(90, num_classes=3, avg_degree=5, num_features=8, seed=2)
    module = {"width": 4, "steps": 3, "batch_size": 30}
    config = TrainConfig(modules=[module, module], bp_count=1, eta=5, keep_own_loss=False)
    trainer = DecoupledTrainer(graph, config, seed=0)
    for step in [Step("forward", 0, 0), Step("forward", 0, 1), Step("backward", 1, 1)]:
        trainer.run_step(step)
    target = trainer.expected[1]
    head_before = trainer.modules[0].head.weight.detach().clone()
    trainer.run_step(Step("backward", 1, 0))
    torch.testing.assert_close(trainer.modules[0].head.weight.detach(), head_before)
    assert target is not None


def test_dropout_mask_rate_and_scale():
    torch.manual_seed(0)
    kept, scale = dropout_mask(torch.empty(200, 300), 0.5, training=True)
    assert abs(kept.float().mean().item() - 0.5) < 0.01 and scale == 2.0
    assert dropout_mask(torch.empty(3, 3), 0.5, training=False) == (None, 1.0)
