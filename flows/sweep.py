"""Many pipeline runs in parallel on Dask (prefect-dask): one task per (dataset, seed), each running
``train_pipeline`` as a nested flow in a Dask worker and tracked in MLflow like any other run.

By default a local cluster of 2 single-threaded worker processes; ``address`` uses any running
dask.distributed scheduler instead (its workers need this project installed and should share the
MLflow store and data folder, e.g. by running from the same directory or with the same
``MLFLOW_TRACKING_URI``; the runs get the data folder as a parameter). The data tasks of every dataset run first, in the
flow's own process, so the workers find them cached and never run DVC stages concurrently.

Threads: on a local cluster the flow chooses each dataset's torch thread count for a worker's
share of the cores (:func:`dgnn.threads.choose_threads` with ``processes=workers``); the workers of
a remote cluster choose for their own machine unless ``threads`` is given.

Output of a local cluster: the task lines of its workers name the run they belong to
(``<dataset>-<config>-seed<seed>-sweep<id>``), dask.distributed logs warnings only, and workers
exit before they would be killed (:class:`FreezeAtExit`).
"""

from __future__ import annotations

import time
import uuid

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dgnn.config import first_train, resolve_config
from dgnn.data.layout import data_root
from dgnn.metrics import mean_std
from dgnn.threads import choose_threads
from adapters.mlflow import run_info, tracking
from flows.dask_cluster import on_dask
from flows.pipeline import run_data_tasks, train_pipeline


@task(name="pipeline-run", task_run_name="{dataset}-seed{seed}", cache_policy=NO_CACHE, persist_result=False)
def pipeline_run_task(dataset: str, task: str, config, seed: int, split_seed: int | None, device: str,
                      run_tags: dict, threads: int | None, data_dir: str) -> dict:
    return train_pipeline(dataset=dataset, task=task, config=config, seed=seed, split_seed=split_seed,
                          device=device, run_tags=run_tags, threads=threads, data_dir=data_dir)


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return run_info.sweep_run_name(flow_run.parameters)


@flow(name="dgnn-sweep", flow_run_name=_flow_run_name, log_prints=True)
def sweep_flow(datasets: list[str], seeds: list[int], task: str = "classify", config: dict | str | None = None,
               split_seed: int | None = None, device: str = "cpu", sweep_id: str | None = None,
               threads: int | None = None, processes: int | None = None, data_dir: str | None = None) -> dict:
    """Train every dataset x seed; returns per-run summaries and per-dataset mean/std.

    ``processes``: the runs training side by side on this machine (None: elsewhere, the workers
    choose their threads). ``data_dir``: the data folder of every run (default ``$DGNN_DATA_DIR``,
    else ``./data``), which the workers must see under the same path."""
    sweep_id, data_dir = sweep_id or uuid.uuid4().hex[:12], str(data_root(data_dir).resolve())
    client = tracking.client()
    configs, run_tags, run_threads = {}, {}, {}
    for dataset in datasets:
        run_config = resolve_config(dataset, task, config)
        configs[dataset] = run_config.model_dump(mode="json")
        # The runs get the config as a dict (Dask workers may not see the file): name the file for them.
        run_tags[dataset] = {"sweep_id": sweep_id, **run_info.config_source(config, dataset, task, None)}
        tracking.ensure_experiment(client, tracking.experiment_name(dataset, task))
        data = run_data_tasks(dataset, run_config.split_seed if split_seed is None else split_seed,
                              first_train(run_config), data_dir)
        run_threads[dataset] = threads if processes is None else choose_threads(data["nodes"], threads, processes)
    futures = [
        pipeline_run_task.submit(dataset, task, configs[dataset], seed, split_seed, device,
                                 run_tags[dataset], run_threads[dataset], data_dir)
        for dataset in datasets for seed in seeds
    ]
    runs, errors = [], []
    for (dataset, seed), future in zip([(d, s) for d in datasets for s in seeds], futures):
        try:
            runs.append(future.result())
        except Exception as err:  # noqa: BLE001 - report every failed run, then fail the sweep
            errors.append(f"{dataset} seed {seed}: {err}")
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(futures)} sweep runs failed: " + "; ".join(errors))
    return {"sweep_id": sweep_id, "task": task, "runs": runs, "datasets": _aggregate(runs)}


def _aggregate(runs: list[dict]) -> dict:
    out: dict = {}
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        mine = [r for r in runs if r["dataset"] == dataset]
        keys = [k for k in mine[0] if k.endswith("_mean") and k != "train_seconds_mean"]
        out[dataset] = {"runs": len(mine), "mlflow_run_ids": [r["mlflow_run_id"] for r in mine]}
        for key in keys:
            out[dataset][key], out[dataset][key.replace("_mean", "_std")] = mean_std(r[key] for r in mine)
    return out


def run_sweep(datasets: list[str], seeds: list[int], *, task: str = "classify", config=None,
              split_seed: int | None = None, device: str = "cpu", address: str | None = None,
              workers: int = 2, threads: int | None = None, data_dir: str | None = None) -> dict:
    """Run :func:`sweep_flow` on a DaskTaskRunner (local cluster of ``workers`` or ``address``)."""
    started = time.perf_counter()
    with on_dask(address, workers) as runner:
        result = sweep_flow.with_options(task_runner=runner)(
            datasets=datasets, seeds=seeds, task=task, config=config, split_seed=split_seed, device=device,
            sweep_id=uuid.uuid4().hex[:12], threads=threads, processes=None if address else workers,
            data_dir=data_dir)
    result["seconds"] = time.perf_counter() - started
    result["dask"] = address or f"local cluster, {workers} workers"
    return result
