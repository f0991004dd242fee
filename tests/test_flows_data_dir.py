"""The data folder reaches a pipeline run as the flow's ``data_dir`` parameter (what ``--data-dir``
becomes, and what a served deployment's runs and Dask workers get), never through the process
environment."""

from __future__ import annotations

import json

from flows_conftest import pipeline_project  # tests/ is on sys.path


def test_a_run_reads_and_writes_the_data_folder_it_is_given(tmp_path_factory, shared_datasets):
    from adapters.mlflow import tracking
    from flows import data_tasks
    from flows.pipeline import train_pipeline

    with pipeline_project(tmp_path_factory.mktemp("data_dir_project"), shared_datasets) as project:
        other = project["root"] / "elsewhere"
        summary = train_pipeline(dataset="cora", task="classify", config=str(project["config"]), seed=0,
                                 device="cpu", data_dir=str(other))
        assert (other / "cora" / "graph" / "meta.json").is_file()
        assert (other / "cora" / "propagated" / "meta.json").is_file()
        assert not (project["root"] / "data" / "cora").exists()  # the environment's folder: untouched
        given = tracking.client(project["uri"]).get_run(summary["mlflow_run_id"]).inputs.dataset_inputs[0].dataset
        assert json.loads(given.source)["uri"] == (other / "cora").resolve().as_uri()
        # The same folder named another way is the same cache entry of the data tasks.
        assert data_tasks.run_stage("fetch", "cora", 0, data_dir=f"{other}/.").name == "Cached"
