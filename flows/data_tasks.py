"""Prefect tasks for the data stages: each runs the stage defined in ``dvc.yaml`` (no second copy).

The tasks run ``dvc repro <stage>@<dataset>`` (stages and parameters in ``dvc.yaml`` and
``params.yaml``) in the project folder (``$DGNN_PROJECT_DIR``, else the working directory), so
``dvc.lock`` describes what the pipeline used and :func:`adapters.dvc.repo.data_version` reads the
hashes every MLflow run records from it. An imported dataset's source is checked first
(:func:`check_source`). Untracked data: a dataset not in ``params.yaml`` (a synthetic graph, a
graph imported outside a DVC workspace) or a ``data_dir`` other than ``<project>/data`` cannot
come from a stage; the task warns and calls the same :mod:`dgnn.data` function, its result has
``tracked: False``, the run is tagged ``data_tracked=false`` and ``dgnn lineage`` reports the
workspace as differing (``dgnn import`` in the project versions a user's graph).

Every task returns a small dict (paths, hashes), never arrays, cached across processes (plain
JSON: :mod:`adapters.prefect.json_results`) on the inputs, the task source, the data folder and
the dataset's ``params.yaml`` entry, so an identical second run is answered from the cache;
:func:`run_stage` runs a stage anyway when its output is missing. :func:`validate_data` is never
cached: it checks that the outputs are what was written and what ``dvc.lock`` says.
:func:`fetch_data` retries network failures only (never a checksum mismatch or a full disk).
"""

from __future__ import annotations

import json
import socket
from urllib.error import URLError

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE, CacheKeyFnPolicy

from adapters.dvc import imports, sources
from adapters.dvc import repo as dvc
from adapters.mlflow import run_info
from adapters.process import settings
from adapters.prefect.json_results import SERIALIZER, PlainJsonOnly
from adapters.dask.cluster import block_runner
from flows.dask_cluster import ADDRESS_ENV, flow_dask_address
from dgnn.data import verify
from dgnn.data.layout import data_root, dataset_dir
from dgnn.data.stage_folders import is_stored


def _data_location(context, parameters) -> str:
    """Cache-key part: the resolved data folder, the dataset's ``params.yaml`` entry (changing a
    DVC stage parameter reruns the stages) and the ``.dvc`` file of its ``source`` if it has one
    (the files of an imported graph: importing changed files reruns them)."""
    project = settings.project_dir()
    entry = dvc.read_params(project).get(parameters.get("dataset"))
    dvc_file = project / f"{entry['source']}.dvc" if entry and entry.get("source") else None
    source = dvc_file.read_text() if dvc_file is not None and dvc_file.is_file() else None
    return json.dumps([str(data_root(parameters.get("data_dir")).resolve()), entry, source], sort_keys=True, default=str)


# data_dir enters the key resolved (by _data_location): the same folder named two ways is one entry.
_CACHED = PlainJsonOnly(policy=(INPUTS - "data_dir") + TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_data_location))
_TRANSIENT_WORDS = ("cannot download", "timed out", "temporary failure", "connection reset",
                    "connection refused", "unable to acquire lock")


def _transient(task_, task_run, state) -> bool:
    """Retry a fetch only for network errors (a checksum mismatch or a full disk will not heal)."""
    err = state.data if isinstance(state.data, BaseException) else None
    if err is None:
        try:
            err = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001
            return True
    while err is not None:
        if isinstance(err, (URLError, ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if any(word in str(err).lower() for word in _TRANSIENT_WORDS):  # e.g. from a dvc subprocess
            return True
        err = err.__cause__
    return False


@task(task_run_name="fetch-{dataset}", cache_policy=_CACHED, persist_result=True, result_serializer=SERIALIZER,
      retries=3, retry_delay_seconds=[1, 2, 4], retry_condition_fn=_transient)
def fetch_data(dataset: str, split_seed: int = 0, data_dir: str | None = None) -> dict:
    """Run ``fetch@<dataset>``: the validated graph in ``data/<dataset>/graph``.

    ``graph/`` always holds split seed 0; the masks of another ``split_seed`` (stratified datasets
    only; Planetoid splits are fixed) are derived from it into ``split-seed<k>/``.
    """
    from dgnn.data import fetch

    project = settings.project_dir()
    entry = dvc.tracked_entry(dataset, project, data_dir)
    if entry is not None:
        dvc.repro("fetch", dataset, project)
        if int(entry.get("split_seed", 0)) != split_seed:
            from dgnn.data.fetch import load_graph

            load_graph(dataset, data_dir, split_seed=split_seed)  # writes split-seed<k>/ from the tracked graph
    else:
        fetch(dataset, data_dir, split_seed=split_seed)
    return dvc.stage_result(dataset, "fetch", entry is not None, project, data_dir, split_seed=split_seed)



@task(task_run_name="validate-{dataset}", cache_policy=NO_CACHE)
def validate_data(dataset: str, data_dir: str | None = None) -> dict:
    """Check the stored data before use; raise :class:`~dgnn.data.DataError` if anything changed.

    Every stored folder must match the content hash in its ``meta.json`` (``dgnn.data.verify``),
    and, for a dataset with DVC stages, no output may differ from ``dvc.lock``
    (:func:`adapters.dvc.repo.check_lock`). Outputs not built yet are fine (the next stage builds them).
    """
    result = verify(dataset, data_dir)  # raises naming the folder whose files changed
    folders = sorted(str(p.resolve()) for p in dataset_dir(dataset, data_dir).iterdir() if is_stored(p))
    status = dvc.check_lock(dataset, settings.project_dir(), data_dir)
    return {"dataset": dataset, "content_hash": result.content_hash, "folders": folders, "dvc": status}


@task(task_run_name="normalise-{dataset}", cache_policy=_CACHED, persist_result=True, result_serializer=SERIALIZER)
def normalise_data(dataset: str, data_dir: str | None = None) -> dict:
    """Run ``normalise@<dataset>``: the normalised adjacency in ``data/<dataset>/adj``."""
    project = settings.project_dir()
    entry = dvc.tracked_entry(dataset, project, data_dir)
    if entry is not None:
        dvc.repro("normalise", dataset, project)
    else:
        from dgnn.data import normalise_stage

        normalise_stage(dataset, data_dir)
    return dvc.stage_result(dataset, "normalise", entry is not None, project, data_dir)


@task(task_run_name="propagate-{dataset}", cache_policy=_CACHED, persist_result=True, result_serializer=SERIALIZER)
def propagate_data(dataset: str, orders: list[int], feature_norm: str, data_dir: str | None = None) -> dict:
    """Run ``propagate@<dataset>``: Â^k N(X) for the orders of ``params.yaml`` in ``propagated/``.

    ``orders`` are what the run would like stored (may be empty). For a dataset with DVC stages
    the stage runs as ``params.yaml`` defines it and its output is never rewritten: orders or a
    ``feature_norm`` it does not cover are logged and left to the trainer, which then filters the
    features in memory. A dataset without stages gets ``orders`` (at least order 1) directly.
    """
    project = settings.project_dir()
    orders = sorted({int(k) for k in orders})
    address = flow_dask_address()  # the blocks go to the run's Dask cluster, if any
    entry = dvc.tracked_entry(dataset, project, data_dir)
    if entry is None:
        from dgnn.data import propagate_stage

        propagate_stage(dataset, orders or [1], data_dir, feature_norm=feature_norm, map_blocks=block_runner(address),
                        on_hop=get_run_logger().info)
        return dvc.stage_result(dataset, "propagate", False, project, data_dir, orders=orders or [1],
                                feature_norm=feature_norm)
    params = entry.get("propagate") or {}
    stage_orders = sorted(int(k) for k in params.get("orders", []))
    stage_norm = params.get("feature_norm", "none")
    if not set(orders) <= set(stage_orders) or (orders and feature_norm != stage_norm):
        dvc.logger().warning(
            "propagate %s: orders %s / feature_norm %r are not stored by the DVC stage (params.yaml: "
            "orders %s, feature_norm %r): the trainer computes them in memory. Add them to "
            "params.yaml and run `dvc repro` to store and version them.",
            dataset, orders, feature_norm, stage_orders, stage_norm)
    dvc.repro("propagate", dataset, project, env={ADDRESS_ENV: address} if address else None)
    return dvc.stage_result(dataset, "propagate", True, project, orders=stage_orders, feature_norm=stage_norm)



def check_source(dataset: str, data_dir: str, identity: dict | None = None) -> dict | None:
    """:func:`source_task` for a dataset with a recorded source in the workspace, else None (no task)."""
    project = settings.project_dir()
    if dvc.in_workspace(project, data_dir) and sources.record_path(project, dataset).is_file():
        return source_task(dataset, data_dir, identity)
    return None


@task(task_run_name="source-{dataset}", cache_policy=NO_CACHE, persist_result=False)
def source_task(dataset: str, data_dir: str, identity: dict | None = None) -> dict | None:
    """Before the stages: :func:`adapters.dvc.imports.refresh`, and for an unchanged source the run
    that trained it already (``earlier``: :func:`adapters.mlflow.run_info.already_trained` of the
    run's ``identity``, unless None)."""
    if (found := imports.refresh(dataset, settings.project_dir())) is None:
        return None
    earlier = None if found.state == "changed" or identity is None else run_info.already_trained(
        dataset, **identity, data_dir=data_dir, why=found.message)
    (get_run_logger().warning if found.state == "missing" else get_run_logger().info)(
        earlier["message"] if earlier else found.message)
    return {"state": found.state, "message": found.message, "drift": found.drift, "earlier": earlier}


def run_stage(stage: str, dataset: str, *args, data_dir: str | None = None):
    """Run the task of ``stage`` (``fetch``, ``validate``, ``normalise``, ``propagate``) on
    ``dataset`` and ``args`` in ``data_dir``; return its final Prefect state. A cached stage whose
    output is missing runs again."""
    data_task = {"fetch": fetch_data, "validate": validate_data, "normalise": normalise_data,
                 "propagate": propagate_data}[stage]
    if stage != "validate":
        wanted = args if stage == "propagate" else ()  # (orders, feature_norm)
        data_task = data_task.with_options(
            refresh_cache=not dvc.outputs_present(stage, dataset, *wanted, data_dir=data_dir))
    return data_task(dataset, *args, data_dir=data_dir, return_state=True)

