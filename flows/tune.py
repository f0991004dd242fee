"""``dgnn tune`` as a Prefect flow: data tasks, trial workers (in process or on Dask), report.

One MLflow parent run per tune in experiment ``<dataset>-<task>-tune``, one child run per trial
(:mod:`adapters.mlflow.tune_tracking`). The Optuna study lives in :func:`adapters.process.stores.optuna_storage`, so
the same command resumes a killed tune, and every worker of a Dask cluster shares it.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from dgnn.config import first_train
from dgnn.data.layout import data_root
from dgnn.seeds import resolve_device
from dgnn.threads import apply_threads
from dgnn.tune.progress import TrialLines
from dgnn.tune.space import default_search_space, load_search_space
from dgnn.tune.study import KEEP, candidates_of, finish, open_study, run_trials, study_name
from adapters.mlflow import run_info, tracking, tune_tracking
from adapters.process import settings, stores
from dgnn.stepwise import stage_inputs
from flows.pipeline import run_data_tasks


@task(name="tune-trials", task_run_name="trials-worker{worker}", cache_policy=NO_CACHE, persist_result=False)
def trials_task(worker: int, job: dict) -> None:
    """Run trials of the shared study until its trial count or time budget is reached."""
    inputs = stage_inputs(job["dataset"], job["data_root"], job["split_seed"], job["data_content_hash"])
    apply_threads(inputs.graph.num_nodes, job["threads"], processes=job["workers"])
    study = open_study(job["study"], job["storage"], job["seeds"][0] + worker)
    logger = tune_tracking.TrialLogger(job["tracking_uri"], job["experiment_id"], job["parent_run_id"],
                                       job["label"])
    lines = TrialLines(get_run_logger().info, job["trials"], job["budget_seconds"])
    run_trials(study, inputs, load_search_space(job["space_file"]), trials=job["trials"],
               budget_seconds=job["budget_seconds"], seeds=job["seeds"], device=job["device"], keep=job["keep"],
               callbacks=[logger, lines])


@task(name="tune-report", task_run_name="tune-report", cache_policy=NO_CACHE, persist_result=False)
def report_task(job: dict) -> dict:
    """Retrain the kept configs' per-seed choice once (test metrics are computed here and only
    here) and log it."""
    inputs = stage_inputs(job["dataset"], job["data_root"], job["split_seed"], job["data_content_hash"])
    study = open_study(job["study"], job["storage"], job["seeds"][0])
    result = finish(study, inputs, seeds=job["seeds"], device=job["device"], keep=job["keep"])
    config = result.run_config(job["dataset"], job["split_seed"])
    best_file = settings.tuned_dir() / f"{job['dataset']}-{job['task']}.yaml"
    best_file.write_text(f"# dgnn tune, study {job['study']}, MLflow run {job['parent_run_id']}\n"
                         + yaml.safe_dump(config, sort_keys=False))
    client = tracking.client(job["tracking_uri"])
    parent = job["parent_run_id"]
    tracking.log_batch(client, parent, metrics=tracking.metric_items(
        {"best_criterion": result.criterion, **{f"final_{k}": v for k, v in result.metrics.items()},
         **{f"trials_{k}": v for k, v in result.trials.items()}}),
        tags={"best_trial": result.best_trial, "best_candidate": result.candidate or "none (searched)"})
    tune_tracking.log_study(job["tracking_uri"], parent, study, config)
    return result.to_dict() | {"best_config_file": str(best_file)}


@flow(name="dgnn-tune", flow_run_name="tune-{dataset}-{task}", log_prints=True)
def tune_flow(dataset: str = "cora", task: str = "classify", space_file: str | None = None,
              trials: int | None = None, budget_seconds: float | None = None, workers: int = 1,
              seed: int = 0, trial_seeds: int = 1, split_seed: int = 0, device: str = "auto",
              threads: int | None = None, keep: int = KEEP, data_dir: str | None = None) -> dict:
    """Search configs of ``dataset`` (in ``data_dir``, default ``$DGNN_DATA_DIR`` or ``./data``) on
    validation data; returns the best config and its metrics."""
    started = time.perf_counter()
    space_file = str(Path(space_file or default_search_space(task)).resolve())
    portfolio = candidates_of(_search_space(space_file, task).candidates)
    data_dir = str(data_root(data_dir).resolve())
    data = run_data_tasks(dataset, split_seed, first_train(portfolio) if portfolio else None, data_dir)
    uri = settings.tracking_uri()
    client = tracking.client(uri)
    experiment_id = tracking.ensure_experiment(
        client, f"{tracking.experiment_name(dataset, task)}-tune",
        description=f"`dgnn tune` searches on {dataset} ({task}): one parent run per tune, a child run per trial")
    tracking.reap_stale_runs(client, experiment_id)
    seeds = list(range(seed, seed + trial_seeds))
    name = study_name(dataset, task, split_seed, space_file, seeds)
    label = f"tune-{dataset}-{task}"
    job = {"dataset": dataset, "task": task, "split_seed": split_seed, "data_root": data_dir,
           "data_content_hash": data["data_content_hash"], "space_file": space_file,
           "storage": stores.optuna_storage(), "study": name, "seeds": seeds,
           "device": str(resolve_device(device)), "trials": trials, "budget_seconds": budget_seconds, "keep": keep,
           "threads": threads, "workers": max(1, workers), "tracking_uri": uri, "experiment_id": experiment_id, "label": label}
    tags = {"dataset": dataset, "task": task, "study": name, "optuna_storage": job["storage"],
            "data_version": data["data_version"], **tracking.provenance("dgnn-tune")}
    params = {"trials": trials, "budget_seconds": budget_seconds, "workers": workers, "seeds": seeds, "keep": keep,
              "split_seed": split_seed, "space_file": run_info.project_relative(Path(space_file)), "device": job["device"]}
    with tracking.run_closed_by_itself(client, experiment_id, label, tags=tags, params=params) as parent:
        job["parent_run_id"] = parent
        open_study(name, job["storage"], seeds[0])  # created here, so parallel workers only load it
        for future in [trials_task.submit(worker, job) for worker in range(max(1, workers))]:
            future.result()
        summary = report_task(job) | {"mlflow_run_id": parent, "experiment_id": experiment_id,
                                      "storage": job["storage"], "data_version": data["data_version"],
                                      "seconds": time.perf_counter() - started}
        tracking.log_metrics(client, parent, {"tune_seconds": summary["seconds"]})
        return summary


def _search_space(space_file: str, task: str):
    space = load_search_space(space_file)
    if space.task != task:
        raise ValueError(f"{space_file} searches {space.task!r} configs but the task is {task!r}")
    return space


def run_tune(*, workers: int = 1, dask_address: str | None = None, **parameters) -> dict:
    """:func:`tune_flow` in this process (one worker) or with its trial workers on Dask."""
    if workers <= 1 and not dask_address:
        return tune_flow(workers=1, **parameters)
    from flows.dask_cluster import on_dask

    with on_dask(dask_address, workers) as runner:
        return tune_flow.with_options(task_runner=runner)(workers=workers, **parameters)
