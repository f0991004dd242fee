"""The CUDA path (skipped where no GPU is visible).

Every random draw (batches, dropout masks, edge masks) comes from CPU generators, so a GPU run
follows the CPU run's batches and differs from it only by floating-point rounding.
"""

from __future__ import annotations

import io

import pytest
import torch

from dgnn.data.synthetic import csbm
from dgnn.trainer import DecoupledTrainer
from dgnn.schedule import schedule
from test_model_mechanics import config, run_steps  # tests/ is on sys.path

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture(scope="module")
def graph():
    return csbm(400, num_classes=3, avg_degree=6, num_features=16, seed=0)


@pytest.mark.parametrize("task", ["classify", "cluster"])
def test_gpu_steps_follow_the_cpu_steps(graph, task):
    cpu = DecoupledTrainer(graph, config(task), seed=2)
    gpu = DecoupledTrainer(graph, config(task), seed=2, device="cuda")
    for step in schedule(2, 1):
        expected, got = cpu.run_step(step), gpu.run_step(step)
        torch.testing.assert_close(torch.tensor(got.losses), torch.tensor(expected.losses), rtol=1e-3, atol=1e-4)
    assert all(p.is_cuda for m in gpu.modules for p in m.parameters())
    assert gpu.inputs[-1].is_cuda and gpu.propagated[-1].is_cuda


@pytest.mark.parametrize("task", ["classify", "cluster"])
def test_gpu_checkpoint_resumes_on_cpu(graph, task):
    """A checkpoint written by a GPU worker continues on a CPU-only one (map_location)."""
    cfg = config(task, bp_count=2)
    plan = schedule(2, 2)
    gpu = DecoupledTrainer(graph, cfg, seed=1, device="cuda")
    run_steps(gpu, plan[:5])
    buffer = io.BytesIO()
    torch.save(gpu.state_dict(), buffer)
    buffer.seek(0)
    cpu = DecoupledTrainer(graph, cfg, seed=1)
    cpu.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=False))
    run_steps(cpu, plan[5:])
    run_steps(gpu, plan[5:])
    assert cpu.best["pass_index"] == gpu.best["pass_index"]
    for key, value in gpu.best["metrics"].items():
        assert cpu.best["metrics"][key] == pytest.approx(value, abs=0.02), key
