"""The tracked pipeline on real Cora: Prefect test harness, a temporary MLflow sqlite store.

One module-scoped environment (project folder, data folder, MLflow store, Prefect result
storage); the tests run in file order and share the store, each checking one acceptance point.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from dgnn.threads import choose_threads
from flows_conftest import TINY, pipeline_project  # tests/ is on sys.path

L, BP = 2, 1
CHILDREN = (2 * BP + 1) * L


@pytest.fixture(scope="module")
def env(tmp_path_factory, shared_datasets):
    with pipeline_project(tmp_path_factory.mktemp("flows_project"), shared_datasets) as project:
        yield project


def _run(env, seed=0, config=None, **kw):
    from flows.pipeline import train_pipeline

    start = time.perf_counter()
    summary = train_pipeline(dataset="cora", task="classify", config=str(config or env["config"]), seed=seed,
                             device="cpu", **kw)
    summary["wall_seconds"] = time.perf_counter() - start
    summary["predictions"] = torch.load(Path(summary["checkpoint_dir"]) / "predictions.pt")
    return summary


@pytest.fixture(scope="module")
def first(env):
    return _run(env)


def _client(env):
    from adapters.mlflow import tracking

    return tracking.client(env["uri"])


def _children(client, parent):
    run = client.get_run(parent)
    return client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'",
                              max_results=1000)


def test_run_logs_parent_children_checkpoints(env, first):
    from dgnn.nn import DecoupledModule

    client = _client(env)
    parent = client.get_run(first["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert client.get_experiment(parent.info.experiment_id).name == "dgnn-cora-classify" == first["experiment"]
    params = parent.data.params
    assert params["train.modules.0.width"] == "32" and params["train.bp_count"] == "1" and params["seed"] == "0"
    tags = parent.data.tags
    assert len(tags["mlflow.source.git.commit"]) == 40
    assert tags["data_version"] == first["data_version"] and tags["data_content_hash"] == first["data_content_hash"]
    assert tags["threads"] == str(first["threads"]) and first["threads"] == choose_threads(2708)  # Cora
    assert {"test_acc", "val_acc", "macro_f1", "best_pass", "train_seconds"} <= set(parent.data.metrics)
    assert parent.data.metrics["test_acc"] == pytest.approx(first["test_acc_mean"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {"plots/loss_curves.png", "plots/metric_per_pass.png"}

    children = _children(client, parent.info.run_id)
    assert len(children) == CHILDREN == first["child_runs"]
    seen = set()
    for child in children:
        assert child.info.status == "FINISHED"
        t = child.data.tags
        seen.add((t["direction"], int(t["pass_index"]), int(t["module_index"])))
        assert child.data.params["module.width"] in ("32", "16")
        history = client.get_metric_history(child.info.run_id, "loss")
        assert len(history) == 20 and [m.step for m in history] == list(range(1, 21))
        assert "val_acc" in child.data.metrics
        path = client.download_artifacts(child.info.run_id, "checkpoint/module.pt", str(env["root"] / "dl" / t["step"]))
        state = torch.load(path, weights_only=True)
        module_index = int(t["module_index"]) - 1
        width_in = 1433 if module_index == 0 else 32
        width_out = 32 if module_index == 0 else 16
        module = DecoupledModule(width_in, width_out, has_input_transform=module_index > 0, num_classes=7)
        module.load_state_dict(state)  # strict: every checkpoint loads
    assert seen == {("forward", 0, 1), ("forward", 0, 2), ("backward", 1, 2), ("backward", 1, 1),
                    ("forward", 1, 1), ("forward", 1, 2)}


def test_registered_model_predicts_like_in_process(env, first):
    """The logged model (loaded by URI, fresh objects) equals the flow's and a plain trainer's."""
    from dgnn.config import RunConfig
    from dgnn.data import load_adjacency, load_graph
    from dgnn.trainer import DecoupledTrainer
    import pandas as pd

    from adapters.mlflow.model import load

    registered = first["registered_model"]
    assert registered["name"] == "dgnn-cora-classify" and registered["champion"]
    nodes = list(range(2708))
    for uri in (first["model_uri"], registered["model_uri"], "models:/dgnn-cora-classify@champion"):
        frame = load(uri).predict(pd.DataFrame({"node": nodes}))
        assert torch.equal(torch.tensor(frame["prediction"].to_numpy()), first["predictions"]["prediction"])
    # The library alone (what `dgnn train` runs) gives the same model and metrics.
    config = RunConfig.model_validate(TINY).train
    trainer = DecoupledTrainer(load_graph("cora"), config, seed=0, adj=load_adjacency("cora"))
    fit = trainer.fit()
    assert torch.equal(trainer.predict(), first["predictions"]["prediction"])
    assert fit.metrics["test_acc"] == first["test_acc_mean"]


def test_the_model_is_an_mlflow_logged_model_with_the_run_metrics(env, first):
    """The run's Models column, the experiment's Models tab and the registry all name the model."""
    from mlflow.entities import LoggedModelStatus

    client = _client(env)
    run = client.get_run(first["mlflow_run_id"])
    model_id = first["model_uri"].removeprefix("models:/")
    assert model_id.startswith("m-") and run.data.tags["model_uri"] == first["model_uri"]
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    found = client.search_logged_models([run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run.info.run_id}'")
    assert [m.model_id for m in found] == [model_id] and found[0].status == LoggedModelStatus.READY
    assert found[0].tags["seed"] == "0" and found[0].params["config_file"]
    linked = {m.key: m.value for m in found[0].metrics}
    assert linked["val_acc"] == run.data.metrics["val_acc"] and "test_acc" in linked
    version = client.get_model_version("dgnn-cora-classify", str(first["registered_model"]["version"]))
    assert version.source == first["model_uri"]  # (the sqlite registry keeps no model_id column)


def test_logged_model_has_an_input_example_and_pins_numpy_and_pandas(env, first):
    from importlib.metadata import version

    import mlflow
    from mlflow.models import Model

    from adapters.mlflow.model import load

    path = mlflow.artifacts.download_artifacts(first["model_uri"], dst_path=str(env["root"] / "dl-model"),
                                               tracking_uri=env["uri"])
    assert Model.load(path).model_id == first["model_uri"].removeprefix("models:/")
    flavor = Model.load(path).flavors["python_function"]  # nothing of the clone or the temp folder it was built in
    assert flavor["model_code_path"] == "packaged_model.py"
    assert flavor["artifacts"]["model"]["uri"] == flavor["artifacts"]["model"]["path"] == "artifacts/model-model.pt"
    example = Model.load(path).load_input_example(path)
    assert example["node"].tolist() == [0, 1, 2]
    requirements = (Path(path) / "requirements.txt").read_text().split()
    assert {f"numpy=={version('numpy')}", f"pandas=={version('pandas')}"} <= set(requirements)
    predicted = load(first["model_uri"]).predict(example)
    assert predicted["prediction"].tolist() == first["predictions"]["prediction"][:3].tolist()
    by_run = load(f"runs:/{first['mlflow_run_id']}/model").predict(example)  # MLflow finds the run's model
    assert by_run["prediction"].tolist() == predicted["prediction"].tolist()


def test_parent_run_names_its_config_and_experiment_and_model_are_described(env, first):
    client = _client(env)
    parent = client.get_run(first["mlflow_run_id"])
    assert parent.info.run_name == "cora-tiny-seed0-run1"
    assert (parent.data.tags["run_label"], parent.data.tags["run_number"]) == ("cora-tiny-seed0", "1")
    assert parent.data.params["config_file"] == "tiny.yaml"  # relative to the project folder it lies in
    assert parent.data.tags["mlflow.user"] and parent.data.tags["mlflow.source.type"] == "LOCAL"
    assert parent.data.tags["mlflow.source.name"] == "train-pipeline"
    assert parent.data.params["config_sha256"] == hashlib.sha256(env["config"].read_bytes()).hexdigest()
    assert parent.data.tags["config_name"] == "tiny" and len(parent.data.tags["config_hash"]) == 64
    assert parent.data.tags["registry_decision"] == "registered: first version"
    note = client.get_experiment(parent.info.experiment_id).tags["mlflow.note.content"]
    assert note.startswith("dgnn pipeline runs on cora (classify)")
    assert client.get_registered_model("dgnn-cora-classify").description.startswith("Decoupled GNN (classify)")


def test_a_config_inside_the_project_is_named_relative_to_it(tmp_path, monkeypatch):
    """Runs of two clones compare equal in the MLflow UI: no clone's path in ``config_file``."""
    from adapters.mlflow import run_info

    monkeypatch.setenv("DGNN_PROJECT_DIR", str(tmp_path))
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "mine.yaml"
    config.write_text("train: {}\n")
    assert run_info.config_source(config, "cora", "classify", None)["config_file"] == "configs/mine.yaml"
    monkeypatch.setenv("DGNN_PROJECT_DIR", str(tmp_path / "elsewhere"))
    assert run_info.config_source(config, "cora", "classify", None)["config_file"] == str(config.resolve())


def test_run_names_tell_configs_seeds_and_sweeps_apart():
    from adapters.mlflow import run_info

    def name(config_file, seed=0, tags=None, dataset="cora"):
        return run_info.run_name(dataset, run_info.config_name(config_file, tags), seed, tags)

    assert name("/x/tiny.yaml", seed=3) == "cora-tiny-seed3"
    assert name("/x/cora-classify.yaml") == "cora-classify-seed0"
    assert name("/x/study.yaml", tags={"tune_run_id": "r1"}) == "cora-tuned-seed0"
    assert name("/x/default-classify.yaml", tags={"config_choice": "sgc"}) == "cora-portfolio-sgc-seed0"
    assert name("inline", tags={"sweep_id": "ab12"}) == "cora-inline-seed0-sweepab12"
    swept = {"config_file": "/x/tiny.yaml", "config_sha256": "00", "sweep_id": "s1"}  # a sweep's dict config
    assert run_info.config_source(TINY, "cora", "classify", swept) == {"config_file": "/x/tiny.yaml",
                                                                       "config_sha256": "00"}
    assert run_info.flow_run_name({"dataset": "cora", "config": TINY, "seed": 1, "run_tags": swept}) == \
        "cora-tiny-seed1-sweeps1"
    assert run_info.flow_run_name({"dataset": "pubmed", "task": "classify", "config": None}) == \
        "pubmed-classify-seed0"
    assert run_info.sweep_run_name({"datasets": ["cora", "citeseer"], "seeds": [0, 1, 2], "sweep_id": "ab12"}) == \
        "sweepab12-cora+citeseer-seeds0-2"
    assert run_info.sweep_run_name({"datasets": ["cora"], "seeds": [3, 1], "sweep_id": None}) == "sweep-cora-seeds3,1"
    inline = run_info.config_source(TINY, "cora", "classify", None)
    assert inline["config_file"] == "inline" and len(inline["config_sha256"]) == 64


def test_experiment_opens_on_training_runs_and_the_run_names_its_dataset(env, first):
    client = _client(env)
    parent = client.get_run(first["mlflow_run_id"])
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's model training
    [given] = parent.inputs.dataset_inputs
    assert given.dataset.name == "cora" and given.dataset.source_type == "local"
    assert first["data_version"] == "untracked"  # this project has no DVC: the digest is the content hash
    assert given.dataset.digest == first["data_content_hash"][:36]
    assert json.loads(given.dataset.source)["uri"] == (env["root"] / "data" / "cora").resolve().as_uri()
    assert {t.key: t.value for t in given.tags} == {"mlflow.data.context": "train"}


def test_prefect_flow_run_is_tagged_linked_and_its_tasks_plainly_named(env, first):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterId)

    parent = _client(env).get_run(first["mlflow_run_id"])
    flow_run_id = UUID(parent.data.tags["prefect.flow_run_id"])
    with get_client(sync_client=True) as prefect:
        flow_run = prefect.read_flow_run(flow_run_id)
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        task_runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert flow_run.name == parent.info.run_name
    assert {"dataset:cora", "task:classify", "config:tiny"} <= set(flow_run.tags)
    # Keyed, so the Artifacts page lists them (Prefect 3.8 stores a link artifact as markdown).
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {"dgnn-cora-classify-mlflow-run", "dgnn-cora-classify-metrics", "dgnn-cora-classify-registry"}
    assert by_key["dgnn-cora-classify-mlflow-run"].data == (
        f"[MLflow run {parent.info.run_name}](http://127.0.0.1:5000/#/experiments/"
        f"{parent.info.experiment_id}/runs/{parent.info.run_id})")
    table = json.loads(by_key["dgnn-cora-classify-metrics"].data)
    assert {row["metric"]: row["value"] for row in table}["val_acc"] == parent.data.metrics["val_acc"]
    assert by_key["dgnn-cora-classify-registry"].data.startswith(parent.data.tags["registry_decision"])
    assert first["model_uri"] in by_key["dgnn-cora-classify-registry"].data
    assert sorted(t.name for t in task_runs) == sorted([
        "fetch-cora", "validate-cora", "normalise-cora", "propagate-cora", "FT0-m1", "FT0-m2", "BT1-m2", "BT1-m1",
        "FT1-m1", "FT1-m2", "evaluate", "report"])


def test_artifact_keys_of_imported_dataset_names_are_keys_prefect_accepts():
    from adapters.prefect.links import artifact_key

    assert artifact_key("dgnn-My_Graph.v2-classify", "metrics") == "dgnn-my-graph-v2-classify-metrics"


def test_second_identical_run_is_cached_and_faster(env, first):
    second = _run(env)
    client = _client(env)
    registered = second["registered_model"]  # same data, config, seed and validation: no new version
    assert registered["version"] is None and registered["model_uri"] is None and not registered["champion"]
    assert registered["decision"].startswith("not registered: identical to version 1 (same data, config, seed")
    rerun = client.get_run(second["mlflow_run_id"])
    assert rerun.data.tags["registry_decision"] == registered["decision"]
    assert len(client.search_model_versions("name = 'dgnn-cora-classify'")) == 1
    assert rerun.info.run_name == "cora-tiny-seed0-run2"  # a rerun is told apart by its number
    # The twin's model is not stored again: the rerun points at version 1, which holds it.
    assert second["model_uri"] == rerun.data.tags["model_uri"] == "models:/dgnn-cora-classify/1"
    assert not rerun.outputs.model_outputs and not client.search_logged_models(
        [rerun.info.experiment_id], filter_string=f"source_run_id = '{rerun.info.run_id}'")
    assert {"fetch", "normalise", "propagate"} <= set(second["cached_tasks"])
    assert second["task_states"]["fetch"] == "Cached"
    assert second["wall_seconds"] < first["wall_seconds"]
    assert second["test_acc_mean"] == first["test_acc_mean"]
    assert torch.equal(second["predictions"]["prediction"], first["predictions"]["prediction"])
    print(f"first run {first['wall_seconds']:.1f}s, second {second['wall_seconds']:.1f}s")


class _Planted:
    """Unpickling it creates the folder ``marker``: proof that a file was unpickled (code ran)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_data_task_cache_hit_reads_plain_json_and_never_unpickles_a_planted_record(env, first, tmp_path):
    from prefect.results import ResultRecord, ResultRecordMetadata
    from prefect.serializers import PickleSerializer

    from flows import data_tasks
    from adapters.prefect.json_results import is_plain_json

    hit = data_tasks.run_stage("fetch", "cora", 0)
    assert hit.name == "Cached"
    stored = Path(hit.data.metadata.storage_key)
    assert is_plain_json(stored.read_bytes())
    assert hit.result() == json.loads(json.loads(stored.read_text())["result"])

    marker = tmp_path / "unpickled"
    planted = ResultRecord(metadata=ResultRecordMetadata(serializer=PickleSerializer(), storage_key=str(stored)),
                           result=_Planted(marker))
    stored.write_bytes(planted.serialize())
    rerun = data_tasks.run_stage("fetch", "cora", 0)
    assert not marker.exists()
    assert rerun.name == "Completed" and is_plain_json(stored.read_bytes())  # deleted unread, written anew
    assert data_tasks.run_stage("fetch", "cora", 0).name == "Cached"


def _fail_at(monkeypatch, name: str) -> None:
    """Step ``name`` fails before it trains (the module tasks run in this process)."""
    from dgnn.stepwise import StepwiseRun

    step = StepwiseRun.step

    def failing(run, index, on_sgd=None):
        if run.plan[index].name == name and not run.done(index):
            raise RuntimeError("injected failure")
        return step(run, index, on_sgd)

    monkeypatch.setattr(StepwiseRun, "step", failing)


def test_failure_in_module_2_then_resume_matches(env, first, monkeypatch):
    from flows.pipeline import ModuleStepError

    client = _client(env)
    with monkeypatch.context() as patch:
        _fail_at(patch, "FT0-m2")
        with pytest.raises(ModuleStepError, match=r"FT0-m2 failed \(forward pass 0, module 2.*injected failure"):
            _run(env)
    experiment = client.get_experiment_by_name("dgnn-cora-classify").experiment_id
    failed = client.search_runs([experiment], "attributes.status = 'FAILED' and tags.dataset = 'cora'")
    assert len(failed) == 1
    parent = failed[0]
    assert "FT0-m2" in parent.data.tags["error"]
    statuses = {c.data.tags["step"]: c.info.status for c in _children(client, parent.info.run_id)}
    assert statuses == {"FT0-m1": "FINISHED", "FT0-m2": "FAILED"}
    assert not client.search_runs([experiment], "attributes.status = 'RUNNING'")

    resumed = _run(env)
    assert resumed["resumed_steps"] == ["FT0-m1"]
    assert resumed["test_acc_mean"] == first["test_acc_mean"] and resumed["val_acc_mean"] == first["val_acc_mean"]
    assert torch.equal(resumed["predictions"]["prediction"], first["predictions"]["prediction"])
    assert torch.equal(resumed["predictions"]["embedding"], first["predictions"]["embedding"])
    assert len(_children(client, resumed["mlflow_run_id"])) == CHILDREN


def test_child_runs_span_their_steps_and_a_changed_config_registers(env, first, monkeypatch):
    """Each child run is RUNNING while its step trains and lasts as long as the step; its losses
    carry their own times; pass metrics sit at their pass. The new config adds a model version."""
    from dgnn.trainer import DecoupledTrainer

    client = _client(env)
    experiment = client.get_experiment_by_name("dgnn-cora-classify").experiment_id
    modules = TINY["train"]["modules"]
    longer = {**TINY, "train": {**TINY["train"],
                                "modules": [{**modules[0], "steps": 300}, {**modules[1], "steps": 100}]}}
    config = env["root"] / "longer.yaml"
    config.write_text(yaml.safe_dump(longer))
    running, run_step = [], DecoupledTrainer.run_step

    def watched(trainer, step, on_sgd=None):
        found = client.search_runs([experiment], f"attributes.status = 'RUNNING' and tags.step = '{step.name}'")
        running.append(len(found))
        return run_step(trainer, step, on_sgd)

    monkeypatch.setattr(DecoupledTrainer, "run_step", watched)
    summary = _run(env, config=config)
    assert running == [1] * CHILDREN
    children = _children(client, summary["mlflow_run_id"])
    # a run logged after its step lasts ~50 ms; the longest step must be long enough to tell apart
    assert max(c.data.metrics["seconds"] for c in children) > 0.25
    passes = sorted({int(c.data.tags["pass_index"]) for c in children if c.data.tags["direction"] == "forward"})
    for child in children:
        seconds, info = child.data.metrics["seconds"], child.info
        duration = (info.end_time - info.start_time) / 1000
        assert 0.8 * seconds - 0.05 <= duration <= 1.3 * seconds + 0.5, info.run_name
        times = [m.timestamp for m in client.get_metric_history(info.run_id, "loss")]
        assert len(set(times)) > 1 and times == sorted(times)
        assert info.start_time <= times[0] and times[-1] <= info.end_time
        if "pass_val_acc" in child.data.metrics:
            history = client.get_metric_history(info.run_id, "pass_val_acc")
            assert [m.step for m in history] == [int(child.data.tags["pass_index"])]
    for key in ("pass_val_acc", "pass_test_acc"):
        assert [m.step for m in client.get_metric_history(summary["mlflow_run_id"], key)] == passes
    registered = summary["registered_model"]
    assert registered["version"] == 2 and registered["decision"] == "registered: config_hash changed since version 1"
    assert len(client.search_model_versions("name = 'dgnn-cora-classify'")) == 2


def _logged(client, run_id: str) -> str:
    """A Logged Model of run ``run_id`` for the registry to register (named apart from the run's own)."""
    return client.create_logged_model(client.get_run(run_id).info.experiment_id, name="registry-test",
                                      source_run_id=run_id).model_id


def test_champion_alias_moves_only_on_improvement(env, first):
    from adapters.mlflow import registry

    client = _client(env)
    name = "dgnn-test-alias"
    run = first["mlflow_run_id"]
    a = registry.register_model(client, name, run, _logged(client, run), 0.5, "val_acc", {"config_hash": "a"})
    b = registry.register_model(client, name, run, _logged(client, run), 0.4, "val_acc", {"config_hash": "b"})
    c = registry.register_model(client, name, run, _logged(client, run), 0.6, "val_acc", {"config_hash": "c"})
    assert (a["version"], b["version"], c["version"]) == (1, 2, 3)  # each config is new
    assert (a["champion"], b["champion"], c["champion"]) == (True, False, True)
    assert int(client.get_model_version_by_alias(name, "champion").version) == c["version"]


def test_registry_adds_a_version_only_for_new_data_config_or_a_better_model(env, first):
    from adapters.mlflow import registry

    client = _client(env)
    name = "dgnn-test-registry"
    run = first["mlflow_run_id"]
    same = {"data_version": "d1", "config_hash": "c1"}
    assert registry.register_model(client, name, run, _logged(client, run), 0.6, "val_acc", same)["decision"] == \
        "registered: first version"
    again = registry.register_model(client, name, run, _logged(client, run), 0.6, "val_acc", same)
    assert again["version"] is None and again["decision"].startswith("not registered")
    new_data = registry.register_model(client, name, run, _logged(client, run), 0.5, "val_acc", {**same, "data_version": "d2"})
    assert new_data["version"] == 2 and new_data["decision"] == "registered: data_version changed since version 1"
    assert not new_data["champion"]
    better = registry.register_model(client, name, run, _logged(client, run), 0.7, "val_acc", {**same, "data_version": "d2"})
    assert better["version"] == 3 and better["champion"] and "beats" in better["decision"]
    assert len(client.search_model_versions(f"name = '{name}'")) == 3


def test_registry_compares_with_every_version_and_the_champion_tag_follows_the_alias(env, first):
    from adapters.mlflow import registry

    client = _client(env)
    name = "dgnn-test-twins"
    experiment = client.create_experiment("registry-twins")  # runs of its own: none of the pipeline's is retagged
    runs = [client.create_run(experiment).info.run_id for _ in range(4)]
    a, b = {"data_version": "d1", "config_hash": "a"}, {"data_version": "d1", "config_hash": "b"}
    seed0 = {"seed": 0, "device": "cpu"}
    one = registry.register_model(client, name, runs[0], _logged(client, runs[0]), 0.5, "val_acc", a, replica=seed0)
    two = registry.register_model(client, name, runs[1], _logged(client, runs[1]), 0.6, "val_acc", b, replica=seed0)
    assert (one["version"], two["version"], two["champion"]) == (1, 2, True)
    # Config a again, same seed and score: version 1's twin, although version 2 is the latest.
    again = registry.register_model(client, name, runs[2], _logged(client, runs[2]), 0.5, "val_acc", a, replica=seed0)
    assert again["version"] is None and again["decision"].startswith("not registered: identical to version 1")
    assert registry.twin(client, name, a, seed0, 0.5) == 1 and registry.twin(client, name, a, seed0, 0.51) is None
    # Config a with another seed: same data and config as version 1, and it does not beat the champion.
    other_seed = registry.register_model(client, name, runs[3], _logged(client, runs[3]), 0.55, "val_acc", a,
                                         replica={"seed": 1, "device": "cpu"})
    assert other_seed["version"] is None and "same data and config as version 1" in other_seed["decision"]
    tags = [client.get_run(r).data.tags["champion"] for r in runs]
    assert tags == ["false", "true", "false", "false"]  # run 0 was champion until version 2 took the alias


def test_crashed_run_is_reaped_as_failed(env):
    from adapters.mlflow import tracking

    client = _client(env)
    experiment = tracking.ensure_experiment(client, "dgnn-crash-test")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tracking.start_run(client, experiment, "crashed", tags={"dgnn.pid": dead.pid})
    assert client.get_run(run).info.status == "RUNNING"
    assert tracking.reap_stale_runs(client, experiment) == [run]
    assert client.get_run(run).info.status == "FAILED"


def test_cli_run_json_and_predict(env, first):
    """`dgnn run --json` in a fresh process (its own ephemeral Prefect server), then `dgnn predict`."""
    dgnn = Path(sys.executable).with_name("dgnn")
    proc_env = {**os.environ, "PREFECT_HOME": str(env["root"] / ".prefect-cli")}
    proc_env.pop("PREFECT_API_URL", None)
    out = subprocess.run([str(dgnn), "run", "--dataset", "cora", "--task", "classify", "--config",
                          str(env["config"]), "--seed", "0", "--json", "--quiet", "--device", "cpu"],
                         env=proc_env, capture_output=True, text=True, timeout=240, cwd=env["root"])
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    for key in ("test_acc_mean", "val_acc_mean", "macro_f1_mean", "per_seed", "mlflow_run_id", "experiment",
                "data_version", "model_uri"):
        assert key in summary
    assert summary["test_acc_mean"] == first["test_acc_mean"]
    server = summary["prefect_ephemeral_server"]  # started on a thread while the command set up
    assert 0 < server["blocked_s"] <= server["start_s"] + 0.5
    pred = subprocess.run([str(dgnn), "predict", "--model-uri", summary["model_uri"], "--nodes", "0,5,9", "--json"],
                          env=proc_env, capture_output=True, text=True, timeout=120, cwd=env["root"])
    assert pred.returncode == 0, pred.stderr[-3000:]
    rows = json.loads(pred.stdout)
    assert [r["node"] for r in rows] == [0, 5, 9]
    assert [r["prediction"] for r in rows] == first["predictions"]["prediction"][[0, 5, 9]].tolist()


def test_checkpoints_write_each_node_sized_tensor_once(tmp_path):
    """A step's checkpoint names the H, Â^p H and E tensor files; only replaced tensors are written."""
    from dgnn.config import TrainConfig
    from dgnn.data.synthetic import csbm
    from dgnn.trainer import DecoupledTrainer
    from dgnn.schedule import schedule
    from dgnn.checkpoint import load_checkpoint, save_checkpoint

    graph = csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0)
    config = TrainConfig.model_validate({**TINY["train"], "feature_norm": "none"})
    trainer = DecoupledTrainer(graph, config, seed=0)
    plan = schedule(L, BP)  # FT0-m1, FT0-m2, BT1-m2, BT1-m1, FT1-m1, FT1-m2
    files, references = [], 0
    for index, step in enumerate(plan):
        trainer.advance(step)
        save_checkpoint(trainer, tmp_path / f"{index:02d}.pt")
        files.append(len(list(tmp_path.glob("tensor-*.pt"))))
        state = trainer.state_dict()
        references += sum(t is not None for key in ("inputs", "propagated", "expected") for t in state[key][1:])
    assert files[3] == files[2]  # BT of module 1 replaces no node-sized tensor
    assert files[-1] < references
    resumed = DecoupledTrainer(graph, config, seed=0)
    load_checkpoint(resumed, tmp_path / f"{len(plan) - 1:02d}.pt")
    for key, first in (("inputs", 1), ("propagated", 1), ("expected", 0)):  # X and P_1: the trainer's own
        for mine, theirs in zip(getattr(resumed, key)[first:], getattr(trainer, key)[first:]):
            assert (mine is None and theirs is None) or torch.equal(mine, theirs)
    assert torch.equal(resumed.best["output"], trainer.best["output"])
    assert torch.equal(resumed.predict(), trainer.predict())


def test_packaged_model_stores_dense_features_dense_and_predicts_like_the_trainer():
    from dgnn.config import TrainConfig
    from dgnn.data.synthetic import csbm
    from dgnn.trainer import DecoupledTrainer
    from adapters.mlflow.model import model_payload
    from adapters.mlflow.packaged_model import forward_all

    graph = csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0)  # Gaussian features
    config = TrainConfig.model_validate({**TINY["train"], "feature_norm": "none"})
    trainer = DecoupledTrainer(graph, config, seed=0)
    trainer.fit()
    payload = model_payload(trainer, config, "synthetic-csbm-300")
    assert torch.equal(payload["x"]["dense"], graph.x.float())
    _, logits = forward_all(payload)
    assert torch.equal(logits.argmax(1), trainer.predict())


def test_predict_names_the_classes_without_torch_warnings(cora_user_files, tmp_data_dir, tmp_path):
    """`dgnn predict` on a model of a graph with named classes: each row carries the class name,
    and stderr holds none of torch's sparse-tensor warnings."""
    from dgnn.config import TrainConfig
    from dgnn.data import import_graph, load_graph
    from dgnn.trainer import DecoupledTrainer
    from adapters.mlflow.model import model_payload, save_packaged_model

    import_graph("named", cora_user_files["edges"], cora_user_files["named_nodes"])
    graph = load_graph("named")
    config = TrainConfig.model_validate(TINY["train"])
    trainer = DecoupledTrainer(graph, config, seed=0)
    trainer.fit()
    model = save_packaged_model(model_payload(trainer, config, "named"), tmp_path / "model")
    out = subprocess.run([sys.executable, "-m", "cli.main", "predict", "--model-uri", str(model), "--nodes", "0,5,9",
                          "--json"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Sparse" not in out.stderr, out.stderr
    rows = json.loads(out.stdout)
    classes = trainer.predict()[[0, 5, 9]].tolist()
    assert [(r["prediction"], r["label"]) for r in rows] == [(k, f"topic-{k}") for k in classes]


def test_module_steps_report_progress_on_stderr_and_in_the_task_log(env):
    """`dgnn run`: each module task logs its first SGD step while it trains, then its end, on stderr
    and in the Prefect task log; the hook leaves the metrics as the library alone has them."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL

    from dgnn.config import RunConfig
    from dgnn.data import load_adjacency, load_graph
    from dgnn.trainer import DecoupledTrainer

    dgnn = Path(sys.executable).with_name("dgnn")
    proc_env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}  # the harness's server keeps the log
    out = subprocess.run([str(dgnn), "run", "--dataset", "cora", "--config", str(env["config"]), "--seed", "1",
                          "--json", "--device", "cpu"], env=proc_env, capture_output=True, text=True, timeout=240,
                         cwd=env["root"])
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    flow_run_id = UUID(_client(env).get_run(summary["mlflow_run_id"]).data.tags["prefect.flow_run_id"])
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        names = {t.id: t.name for t in prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))}
    task_log = "\n".join(f"Task run {names[log.task_run_id]!r} - {log.message}" for log in logs if log.task_run_id)
    for step in ("FT0-m1", "FT0-m2", "BT1-m2", "BT1-m1", "FT1-m1", "FT1-m2"):
        started = f"Task run {step!r} - SGD step 1/20: loss "
        ended = f"Task run {step!r} - done: 20 SGD steps, loss "
        for text in (out.stderr, task_log):
            assert started in text and ended in text, step
            assert text.index(started) < text.index(ended)
    # one result line per run, which a served deployment's terminal shows too
    assert "Task run 'report' - result: train_acc=" in task_log and f"test_acc={summary['test_acc_mean']:.4f}" in task_log
    trainer = DecoupledTrainer(load_graph("cora"), RunConfig.model_validate(TINY).train, seed=1,
                               adj=load_adjacency("cora"))
    fit = trainer.fit()
    assert summary["test_acc_mean"] == fit.metrics["test_acc"] and summary["val_acc_mean"] == fit.metrics["val_acc"]
    predictions = torch.load(Path(summary["checkpoint_dir"]) / "predictions.pt")
    assert torch.equal(predictions["prediction"], trainer.predict())


def test_step_progress_is_throttled_and_streams_losses_to_the_child_run(env, tmp_path):
    """A line at the first SGD step, then at most one per interval; the losses streamed while
    training plus those logged at the close make each SGD step's loss once, at its own time."""
    from dgnn.config import TrainConfig
    from dgnn.data.synthetic import csbm
    from dgnn.trainer import DecoupledTrainer
    from dgnn.schedule import Step
    from adapters.mlflow import step_runs, tracking
    from dgnn.step_progress import StepProgress

    graph = csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0)
    config = TrainConfig.model_validate({**TINY["train"], "feature_norm": "none", "module_patience": 1})
    step = Step("forward", 0, 0)
    plain = DecoupledTrainer(graph, config, seed=0).run_step(step)

    client = _client(env)
    experiment = tracking.ensure_experiment(client, "dgnn-progress-test")
    run = tracking.start_run(client, experiment, "FT0-m1")
    # the two fields of a TrackedRun that logging reads; no background logger: logged at once
    tracked = SimpleNamespace(tracking_uri=env["uri"], parent_run_id="none")
    rare, every = [], []
    progress = StepProgress(rare.append, functools.partial(step_runs.stream_losses, tracked, run), every=3600)
    result = DecoupledTrainer(graph, config, seed=0).run_step(step, progress)
    DecoupledTrainer(graph, config, seed=0).run_step(step, StepProgress(every.append, every=0))
    assert result.losses == plain.losses and result.val_metric == plain.val_metric  # the hook changes nothing
    assert len(rare) == 1 and rare[0].startswith("SGD step 1/20: loss ")
    assert len(every) == result.steps_run and every[-1].startswith(f"SGD step {result.steps_run}/20: ")
    assert any("val_acc" in line for line in every)  # from SGD step 10 on (the first validation)
    assert [m.step for m in client.get_metric_history(run, "loss")] == [1]  # streamed while training

    record = {"losses": result.losses, "loss_times": result.loss_times, "val_metric": result.val_metric,
              "seconds": result.seconds, "steps_run": result.steps_run, "pass": None, "resumed": False}
    checkpoint = tmp_path / "module.pt"
    checkpoint.write_bytes(b"weights")
    step_runs.close_step_run(tracked, run, record, checkpoint, tracking.now_ms(), progress.streamed)
    history = client.get_metric_history(run, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (i + 1, loss, int(t * 1000)) for i, (loss, t) in enumerate(zip(result.losses, result.loss_times))]


def test_out_of_core_run_gets_the_in_memory_numbers_and_resumes_from_its_files(env, first, monkeypatch):
    """Node tensors as files in the run folder (forced on): a failed step leaves the files its last
    checkpoint names, the rerun resumes from them, and the result equals the in-memory run's."""
    import mlflow.pyfunc
    import pandas as pd
    from flows.pipeline import ModuleStepError

    run_dir = Path(first["checkpoint_dir"])  # the same run: the node tensors' home changes no number
    with monkeypatch.context() as patch:
        _fail_at(patch, "BT1-m1")
        with pytest.raises(ModuleStepError, match="BT1-m1 failed"):
            _run(env, out_of_core="on")
    files = {p.name for p in run_dir.glob("rows-*.npy")}
    named = torch.load(sorted(run_dir.glob("02-BT1-m2.pt"))[0], weights_only=True)
    refs = {ref["row_file"] for key in ("inputs", "propagated", "expected") for ref in named[key] if ref}
    refs.add(named["best"]["output"]["row_file"])
    assert files == refs  # superseded files were deleted as the run went

    resumed = _run(env, out_of_core="on")
    assert resumed["resumed_steps"] == ["FT0-m1", "FT0-m2", "BT1-m2"]
    for key in ("test_acc_mean", "val_acc_mean", "macro_f1_mean"):
        assert resumed[key] == first[key]
    assert torch.equal(resumed["predictions"]["prediction"], first["predictions"]["prediction"])
    assert torch.equal(resumed["predictions"]["embedding"], first["predictions"]["embedding"])
    assert not list(run_dir.glob("rows-*.npy"))
    assert _client(env).get_run(resumed["mlflow_run_id"]).data.tags["out_of_core"] == "true"
    model = mlflow.pyfunc.load_model(resumed["model_uri"])  # predictions stored, no graph shipped
    rows = model.predict(pd.DataFrame({"node": [0, 5, 9]}))
    assert rows["prediction"].tolist() == first["predictions"]["prediction"][[0, 5, 9]].tolist()


def test_a_logged_model_registers_in_a_store_other_than_the_environments(tmp_path):
    """The registry finds the logged model in the client's own store (MLFLOW_TRACKING_URI names another)."""
    from adapters.mlflow import registry, tracking

    environment = os.environ.get("MLFLOW_TRACKING_URI")
    client = tracking.client(f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}")
    assert environment and client.tracking_uri != environment
    run = client.create_run(client.create_experiment("elsewhere")).info.run_id
    model_id = _logged(client, run)
    registered = registry.register_model(client, "dgnn-elsewhere", run, model_id, 0.5, "val_acc", {"config_hash": "a"})
    assert registered["version"] == 1
    assert client.get_model_version("dgnn-elsewhere", "1").source == f"models:/{model_id}"
    assert os.environ.get("MLFLOW_TRACKING_URI") == environment  # later runs of the process still find their store
