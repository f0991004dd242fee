"""What tells pipeline runs apart in MLflow and Prefect: names, the config's identity, the data
input, and the descriptions of the experiment and registered model they write to.

A run is named ``<label>-run<n>``: its label ``<dataset>-<config name>-seed<seed>`` (the dataset once
when the config name starts with it, plus ``-sweep<id>`` when a sweep ran it) and the how-manieth
run of that label in the experiment it is, so that reruns and scheduled retrains stay apart. Tags
``run_label`` and ``run_number`` keep the two parts to filter by.
The config name is ``tuned`` for a config ``dgnn tune`` chose (run tag ``tune_run_id``),
``portfolio-<candidate>`` for a portfolio's choice (tag ``config_choice``), else the config
file's stem (``inline`` for a config given as a dict). ``config_file`` / ``config_sha256`` name
the file (relative to the project folder when inside it, so that runs of two clones compare equal)
and hash its bytes; ``config_hash`` hashes the resolved run config (after a portfolio
choice), which is what the registry compares.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from dgnn.config import RunConfig, default_config_path
from dgnn.data.layout import dataset_dir
from adapters.dvc import repo as dvc
from adapters.mlflow import tracking
from adapters.process import settings

SOURCE_KEYS = ("config_file", "config_sha256")


def config_path(config, dataset: str, task: str) -> Path | None:
    """The file a run's ``config`` argument names (the shipped default for None); None for a dict."""
    if config is None:
        return default_config_path(dataset, task)
    return Path(config) if isinstance(config, (str, Path)) else None


def config_source(config, dataset: str, task: str, run_tags: dict | None) -> dict[str, str]:
    """``config_file`` and ``config_sha256`` (of its bytes) for a run's ``config`` argument; those
    in ``run_tags`` win (a sweep passes a file's config as a dict and names the file there)."""
    tagged = {k: str(v) for k, v in (run_tags or {}).items() if k in SOURCE_KEYS}
    if len(tagged) == len(SOURCE_KEYS):
        return tagged
    path = config_path(config, dataset, task)
    if path is None:
        data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
        return {"config_file": "inline", "config_sha256": _sha256_json(data)}
    return {"config_file": project_relative(path), "config_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def project_relative(path: Path) -> str:
    """``path`` relative to the project folder when inside it, else absolute."""
    path, project = path.resolve(), settings.project_dir()
    return str(path.relative_to(project)) if path.is_relative_to(project) else str(path)


def config_name(config_file: str, run_tags: dict | None) -> str:
    """The name a run's config goes by: ``tuned``, ``portfolio-<candidate>`` or the file's stem."""
    tags = run_tags or {}
    if "tune_run_id" in tags:
        return "tuned"
    if "config_choice" in tags:
        return f"portfolio-{tags['config_choice']}"
    return Path(config_file).stem


def run_name(dataset: str, name: str, seed: int, run_tags: dict | None) -> str:
    # Shipped configs are named <dataset>-<task>: "cora-classify-seed0", not "cora-cora-classify-seed0".
    label = name if name.startswith(f"{dataset}-") else f"{dataset}-{name}"
    sweep = (run_tags or {}).get("sweep_id")
    return f"{label}-seed{seed}" + (f"-sweep{sweep}" if sweep else "")


def numbered(mlflow_client: MlflowClient, experiment_id: str, label: str) -> dict[str, str]:
    """``name``, ``run_label`` and ``run_number`` of the next parent run labelled ``label``: one more
    than the newest such run's number (two runs of one label started in the same instant could
    share a number; identical runs are refused while one runs, so only a changed data version could)."""
    newest = mlflow_client.search_runs([experiment_id], f"tags.run_label = '{label}'", run_view_type=ViewType.ALL,
                                       max_results=1, order_by=["attributes.start_time DESC"])
    number = int(newest[0].data.tags.get("run_number", "0")) + 1 if newest else 1
    return {"name": f"{label}-run{number}", "run_label": label, "run_number": str(number)}


def flow_run_name(parameters: dict) -> str:
    """The Prefect flow run's label from the flow's parameters, until the run is numbered (and a
    portfolio's choice is known)."""
    dataset, task = parameters.get("dataset", "cora"), parameters.get("task", "classify")
    tags = parameters.get("run_tags") or {}
    config_file = tags.get("config_file") or str(config_path(parameters.get("config"), dataset, task) or "inline")
    return run_name(dataset, config_name(config_file, tags), parameters.get("seed", 0), tags)


def sweep_run_name(parameters: dict) -> str:
    """The sweep flow run's name: ``sweep<id>-<datasets>-seeds<seeds>`` (its runs end in ``-sweep<id>``)."""
    seeds = parameters["seeds"]
    contiguous = len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1))
    shown = f"{seeds[0]}-{seeds[-1]}" if contiguous else ",".join(map(str, seeds))
    return f"sweep{parameters.get('sweep_id') or ''}-{'+'.join(parameters['datasets'])}-seeds{shown}"


def trained_before(mlflow_client: MlflowClient, experiment: str, data_version: str, source: dict[str, str],
                   replica: dict) -> dict | None:
    """The newest finished pipeline run of ``experiment`` on ``data_version`` with the config of
    ``source`` (the file's bytes: :func:`config_source`) and the ``replica`` parameters (seed,
    split seed, device), as ``mlflow_run_id`` and ``name``; None when there is none."""
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None or data_version == "untracked":
        return None
    wanted = {"tags.data_version": data_version, "params.config_sha256": source["config_sha256"],
              **{f"params.{k}": str(v) for k, v in replica.items()}}
    query = " and ".join([*(f"{k} = '{v}'" for k, v in wanted.items()), "attributes.status = 'FINISHED'"])
    for run in mlflow_client.search_runs([found.experiment_id], query, max_results=50,
                                         order_by=["attributes.start_time DESC"]):
        if tracking.PARENT_TAG not in run.data.tags:  # a module step's child run has the parent's tags
            return {"mlflow_run_id": run.info.run_id, "name": run.info.run_name}
    return None


def already_trained(dataset: str, task: str, config, run_tags: dict | None, seed: int, split_seed: int, device: str,
                    data_dir, why: str) -> dict | None:
    """What a pipeline run returns instead of training when :func:`trained_before` finds a run of
    the workspace's data version of ``dataset`` (``dvc.lock``) with this config, seed, split seed
    and device: that run's identity, ``skipped`` and the ``message`` (``why`` first); else None."""
    replica = {"seed": seed, "split_seed": split_seed, "device": device}
    version = dvc.data_version(dataset, data_dir=data_dir)["data_version"]
    experiment, uri = tracking.experiment_name(dataset, task), settings.tracking_uri()
    earlier = trained_before(tracking.client(uri), experiment, version,
                             config_source(config, dataset, task, run_tags), replica)
    if earlier is None:
        return None
    message = (f"{why}; data version {version} with this config and seed {replica['seed']} was trained by run "
               f"{earlier['name']} ({earlier['mlflow_run_id']}): not training again (`dgnn run --retrain` trains anyway)")
    return {"skipped": True, "message": message, **earlier, "experiment": experiment, "tracking_uri": uri,
            "data_version": version}


def config_hash(run_config: RunConfig) -> str:
    return _sha256_json(run_config.model_dump(mode="json"))


def _sha256_json(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def log_training_data(mlflow_client: MlflowClient, run_id: str, dataset: str, data: dict, data_dir=None) -> None:
    """The dataset as the run's input, its digest DVC's hash of the propagated features (which pins
    graph and adjacency too), or their content hash for data DVC does not track."""
    tracked = data["data_version"] != "untracked"
    tracking.log_dataset(mlflow_client, run_id, dataset,
                         data["data_version"] if tracked else data["data_content_hash"], dataset_dir(dataset, data_dir),
                         {"nodes": data["nodes"], "dvc_tracked": tracked})


def experiment_description(dataset: str, task: str) -> str:
    # The UI renders the description as Markdown: names with <placeholders> go in code spans.
    return (f"dgnn pipeline runs on {dataset} ({task}). One parent run per training run, named "
            "`<dataset>-<config>-seed<seed>-run<n>` (tags `run_label`, `run_number`): config, data version, metrics, plots and the packaged model. "
            "Under it one child run per module step (`FT<pass>-m<module>` forward, `BT<pass>-m<module>` "
            "backward) with its loss per SGD step and the module's checkpoint.")


def model_description(dataset: str, task: str, criterion_name: str) -> str:
    return (f"Decoupled GNN ({task}) trained on {dataset} by the dgnn pipeline, packaged with the graph: "
            "predict() takes a DataFrame with a `node` column. A version is added when the data or "
            f"the config change, or when {criterion_name} on validation beats the champion; alias "
            "`champion` is the best on validation.")
