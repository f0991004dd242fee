"""A pipeline run whose config turns the accuracy levers on: each lever is visible where users look
(the Prefect flow run's tags and task names, the MLflow run's tags and child runs), the run equals
the library's fit, and its logged model predicts what the trainer predicted."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from flows_conftest import TINY, pipeline_project  # tests/ is on sys.path

LEVERED = copy.deepcopy(TINY)
LEVERED["train"] |= {
    "consistency": {"views": 2, "batch_size": 128},
    "self_training": {"stages": 1, "threshold": 0.8},
    "correct_smooth": {"correct_alphas": [0.0, 0.8], "smooth_alphas": [0.0, 0.8], "layers": 10},
    "label_input": {"order": 2, "splits": 2},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_datasets):
    from flows.pipeline import train_pipeline

    with pipeline_project(tmp_path_factory.mktemp("levers_project"), shared_datasets) as project:
        config = project["root"] / "levered.yaml"
        config.write_text(yaml.safe_dump(LEVERED))
        summary = train_pipeline(dataset="cora", task="classify", config=str(config), seed=0, device="cpu")
        yield project, summary


def test_the_levers_are_named_on_the_mlflow_run_and_the_prefect_flow_run(run):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from adapters.mlflow import tracking

    project, summary = run
    client = tracking.client(project["uri"])
    parent = client.get_run(summary["mlflow_run_id"])
    levers = "consistency+label_input+self_training+correct_smooth"
    assert parent.data.tags["levers"] == levers
    assert parent.data.tags["architecture"].endswith(f"1 BT; {levers}")
    assert {"correct-and-smooth.correct_alpha", "correct-and-smooth.smooth_alpha"} <= set(parent.data.tags)
    assert parent.data.params["train.consistency.views"] == "2"
    flow_run_id = UUID(parent.data.tags["prefect.flow_run_id"])
    with get_client(sync_client=True) as prefect:
        flow_run = prefect.read_flow_run(flow_run_id)
        tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert f"levers:{levers}" in flow_run.tags
    names = {t.name for t in tasks}
    stage_steps = {f"{prefix}{step}" for prefix in ("", "ST1-")
                   for step in ("FT0-m1", "FT0-m2", "BT1-m2", "BT1-m1", "FT1-m1", "FT1-m2")}
    assert stage_steps | {"correct-and-smooth", "evaluate", "report"} <= names
    assert summary["child_runs"] == 12  # one MLflow child run per module step of both stages


def test_the_run_equals_the_library_fit_and_its_model_predicts_like_the_trainer(run):
    import pandas as pd

    from adapters.mlflow.model import load
    from dgnn.config import RunConfig
    from dgnn.data import load_adjacency, load_graph
    from dgnn.trainer import DecoupledTrainer

    project, summary = run
    trainer = DecoupledTrainer(load_graph("cora"), RunConfig.model_validate(LEVERED).train, seed=0,
                               adj=load_adjacency("cora"))
    fit = trainer.fit()
    assert fit.metrics["test_acc"] == summary["test_acc_mean"]
    assert "pre_post_val_acc" in fit.metrics
    frame = load(summary["model_uri"]).predict(pd.DataFrame({"node": range(2708)}))
    assert torch.equal(torch.tensor(frame["prediction"].to_numpy()), trainer.predict())
