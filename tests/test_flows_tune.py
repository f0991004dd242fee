"""``dgnn tune`` and ``dgnn run --tune`` as a user runs them: trials on 2 Dask workers sharing one
sqlite study, one MLflow parent run with a child run per trial, the best config and plots as
artifacts, and a pipeline run whose registered model names the tune. Marked slow (about a minute)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dgnn.config import Portfolio, RunConfig, load_config
from test_tune import CANDIDATES, SPACE  # tests/ is on sys.path
from adapters.process import settings

pytestmark = pytest.mark.slow
DGNN = str(Path(sys.executable).with_name("dgnn"))


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_datasets):
    root = tmp_path_factory.mktemp("flows_tune")
    (root / "candidates.yaml").write_text(yaml.safe_dump(CANDIDATES, sort_keys=False))
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    env = settings.without_tool_settings()
    env |= {"DGNN_PROJECT_DIR": str(root), "DGNN_DATA_DIR": str(root / "data"),
            "DGNN_DATA_MIRROR": str(shared_datasets), "PYTHONWARNINGS": "ignore",
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    return {"root": root, "env": env, "uri": env["MLFLOW_TRACKING_URI"]}


def _dgnn(project, *args) -> dict:
    out = subprocess.run([DGNN, *args, "--dataset", "cora", "--search-space", str(project["root"] / "space.yaml"),
                          "--device", "cpu", "--json", "--quiet"], env=project["env"], cwd=project["root"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def tuned(project):
    return _dgnn(project, "tune", "--trials", "5", "--workers", "2")


def test_tune_tracks_every_trial_under_one_parent(project, tuned):
    from adapters.mlflow import tracking

    client = tracking.client(project["uri"])
    parent = client.get_run(tuned["mlflow_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["study"] == tuned["study"]
    assert parent.data.metrics["best_criterion"] == pytest.approx(tuned["criterion"])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    # each worker finishes the trial it is on when the study reaches 5: up to one more
    assert 5 <= len(children) <= 6 and {c.data.tags["trial"] for c in children} == {str(i) for i in range(len(children))}
    assert {c.info.status for c in children} <= {"FINISHED", "KILLED"}
    assert all("val_criterion" in c.data.metrics and "seconds" in c.data.metrics for c in children)
    assert not any(k.startswith("test") for c in children for k in c.data.metrics)
    assert len({c.data.tags["worker_pid"] for c in children}) == 2, "trials should run on both Dask workers"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "best_config.yaml" in artifacts
    assert {"plots/optimization_history.png", "plots/param_importances.png"} <= plots
    best = load_config(client.download_artifacts(parent.info.run_id, "best_config.yaml", str(project["root"])))
    if isinstance(best, Portfolio):  # the kept configs, best first
        assert list(best.candidates) == list(tuned["kept"]) and len(best.candidates) > 1
        best_train = next(iter(best.candidates.values()))
    else:
        assert isinstance(best, RunConfig) and len(tuned["kept"]) == 1
        best_train = best.train
    assert best_train.model_dump(mode="json") == tuned["config"]
    named = project["root"] / "tuned" / "cora-classify.yaml"  # where a user finds it after make clean
    assert tuned["best_config_file"] == str(named)
    assert load_config(named).model_dump(mode="json") == best.model_dump(mode="json")


def test_run_with_tune_resumes_the_study_and_names_it_on_the_model(project, tuned):
    from adapters.mlflow import tracking

    summary = _dgnn(project, "run", "--tune", "--trials", "5")
    client = tracking.client(project["uri"])
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["tune_study"] == tuned["study"]
    tune_run = client.get_run(run.data.tags["tune_run_id"])
    finished = tune_run.data.metrics["trials_complete"] + tune_run.data.metrics["trials_pruned"]
    assert finished == sum(tuned["trials"][k] for k in ("complete", "pruned"))  # resumed: none added
    version = client.get_model_version(summary["registered_model"]["name"], summary["registered_model"]["version"])
    assert version.tags["tune_run_id"] == run.data.tags["tune_run_id"]
    assert summary["val_acc_mean"] == pytest.approx(tuned["metrics"]["val_acc"])


def test_run_with_a_portfolio_trains_the_candidate_chosen_on_validation(project):
    from adapters.mlflow import tracking

    out = subprocess.run([DGNN, "run", "--dataset", "cora", "--config", str(project["root"] / "candidates.yaml"),
                          "--device", "cpu", "--json", "--quiet"], env=project["env"], cwd=project["root"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout)
    run = tracking.client(project["uri"]).get_run(summary["mlflow_run_id"])
    scores = {k.removeprefix("candidate_criterion."): v for k, v in run.data.metrics.items()
              if k.startswith("candidate_criterion.")}
    assert set(scores) == {"smooth", "features"}
    chosen = run.data.tags["config_choice"]
    assert chosen == max(scores, key=scores.get) and summary["val_acc_mean"] == pytest.approx(scores[chosen])
    assert run.data.params["train.modules.0.order"] == str(CANDIDATES["candidates"][chosen]["modules"][0]["order"])
