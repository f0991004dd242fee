"""The pipeline: ``train_pipeline`` chains the data tasks, one task per module step, evaluate, report.

    fetch -> validate -> normalise -> propagate -> FT0-m1 .. FT0-mL -> BT1-mL .. BT1-m1 -> FT1-m1 ..
          -> evaluate -> report

* Data tasks (``flows.data_tasks``, DVC-backed) are cached across processes on their inputs and
  source (plus the data folder and the dataset's ``params.yaml`` entry), with results persisted
  under ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``; a stage whose output is missing runs again and
  refreshes its cache entry; validate (the integrity check) always runs; fetch retries transient
  network failures (never a full disk).
* A module task runs one step of the library's :class:`dgnn.stepwise.StepwiseRun` (which keeps
  the checkpoints in ``<runs dir>/<run key>/`` and resumes a rerun after a failure from the
  finished steps) and logs one MLflow child run (:mod:`adapters.mlflow.step_runs`). One run at a time holds
  a run folder: an identical run started meanwhile fails at once (``dgnn.checkpoint.run_lock``).
* Every MLflow run this flow opens is closed: FINISHED, FAILED with the error as a tag, or KILLED
  with an ``interrupted`` tag on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time

import torch
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from dgnn.config import Portfolio, RunConfig, TrainConfig, first_train, resolve_config
from dgnn.data import content_hash
from dgnn.data.layout import data_root, dataset_dir
from dgnn.data.stage_folders import is_stored, read_meta
from dgnn.seeds import resolve_device, summarise
from dgnn.node_store import out_of_core_for
from dgnn.step_progress import StepProgress, done_line
from dgnn.stepwise import RunSpec, StepwiseRun, stage_inputs
from dgnn.threads import apply_threads
from dgnn.results import FitResult
from dgnn.tune.portfolio import choose
from adapters.dask.cluster import block_runner
from adapters.dvc import repo as dvc
from adapters.mlflow import run_info, step_runs, tracking
from adapters.mlflow.pipeline_record import pipeline_record, report
from adapters.mlflow.tracked_run import TrackedRun
from adapters.prefect import server
from adapters.process import settings
from flows import data_tasks
from flows.dask_cluster import flow_dask_address

# -- configuration ----------------------------------------------------------------------------------


# -- data tasks -------------------------------------------------------------------------------------


def run_data_tasks(dataset: str, split_seed: int, train: TrainConfig | None, data_dir: str | None = None) -> dict:
    """fetch -> validate -> normalise -> propagate in ``data_dir``; returns per-task state names,
    the version and the node count.

    The propagate stage stores module 1's power of ``train`` (other filters, and every filter
    when ``train`` is None, are computed by the trainer)."""
    first = train.modules[0] if train else None
    wanted = [first.order] if first and first.filter == "power" else []
    steps = [
        ("fetch", (split_seed,)),
        ("validate", ()),
        ("normalise", ()),
        ("propagate", (wanted, train.feature_norm if train else "none")),
    ]
    states = {}
    for name, args in steps:
        state = data_tasks.run_stage(name, dataset, *args, data_dir=data_dir)
        state.result()  # raises the task's error
        states[name] = state.name
    version = dvc.data_version(dataset, data_dir=data_dir)
    propagated = dataset_dir(dataset, data_dir) / "propagated"
    graph_meta = read_meta(dataset_dir(dataset, data_dir) / "graph")
    return {"states": states, "cached": [k for k, v in states.items() if v == "Cached"],
            "nodes": graph_meta["nodes"], "features": graph_meta["features"],
            "versions": version, "data_version": version["data_version"],
            "data_content_hash": read_meta(propagated)["content_hash"] if is_stored(propagated)
            else content_hash(propagated)}


@task(name="choose-config", task_run_name="choose-config", cache_policy=NO_CACHE, persist_result=False)
def choose_task(dataset: str, portfolio: Portfolio, seed: int, split_seed: int, device: str,
                data_content_hash: str, data_dir: str) -> dict:
    """The portfolio candidate with the best validation criterion for this seed."""
    inputs = stage_inputs(dataset, data_dir, split_seed, data_content_hash)
    choice = choose(inputs, portfolio, seed, device, verbose=True)
    return {"name": choice.name, "train": choice.config, "scores": choice.scores, "seconds": choice.seconds}


# -- module task ------------------------------------------------------------------------------------


class ModuleStepError(RuntimeError):
    """A module task failed; the message names the step, its direction, pass and module."""


@task(name="module-step", task_run_name="{step_name}", cache_policy=NO_CACHE, persist_result=False)
def module_task(tracked: TrackedRun, index: int, step_name: str) -> dict:
    """Step ``index`` of the run (``step_name`` names the task run), with its MLflow child run and
    progress lines while it trains."""
    step = tracked.run.plan[index]
    child = step_runs.open_step_run(tracked, index)  # RUNNING in MLflow while the step trains
    logger = get_run_logger()
    progress = StepProgress(logger.info, functools.partial(step_runs.stream_losses, tracked, child))
    try:
        record = tracked.run.step(index, on_sgd=progress)
    except BaseException as err:
        tracking.log_later(tracked.parent_run_id, step_runs.fail_step_run, tracked, child, err, tracking.now_ms())
        if not isinstance(err, Exception):
            raise  # Ctrl-C, SIGTERM: left as they are, so the CLI reports an interruption, not a failure
        raise ModuleStepError(
            f"module task {step.name} failed ({step.direction} pass {step.pass_index}, module {step.module + 1}, "
            f"step {index + 1}): {type(err).__name__}: {err}"
        ) from err
    tracking.log_later(tracked.parent_run_id, step_runs.close_step_run, tracked, child, record,
                       tracked.run.module_file(index), tracking.now_ms(), progress.streamed)
    if not record["resumed"]:
        logger.info(done_line(record["steps_run"], record["losses"][-1], record["val_metric"], record["seconds"]))
    if record["pass"]:
        p = record["pass"]
        shown = " ".join(f"{k}={v:.4f}" for k, v in p["metrics"].items())
        logger.info(f"pass {p['pass_index']}: {shown}{' *best*' if p['is_best'] else ''}")
    return {k: v for k, v in record.items() if k not in ("losses", "loss_times")} | {
        "final_loss": record["losses"][-1]}


# -- evaluate and report ----------------------------------------------------------------------------


@task(name="post-process", task_run_name="{kind}", cache_policy=NO_CACHE, persist_result=False)
def post_process_task(tracked: TrackedRun, records: list[dict], kind: str) -> dict:
    """The config's post-processing of the selected pass (chosen on validation, or by modularity)."""
    post = tracked.run.post_process(records)
    chosen = {k: v for k, v in post.items() if k not in ("kind", "criterion", "before", "after")}
    get_run_logger().info(f"{kind} {chosen}: {post['criterion']} {post['before']:.4f} -> {post['after']:.4f}")
    tracking.set_tags(tracking.client(tracked.tracking_uri), tracked.parent_run_id,
                      {f"{kind}.{k}": v for k, v in chosen.items()})
    return post


@task(name="evaluate", task_run_name="evaluate", cache_policy=NO_CACHE, persist_result=False)
def evaluate_task(tracked: TrackedRun, records: list[dict]) -> FitResult:
    """Restore the selected pass; save predictions, embedding and the model payload."""
    from adapters.mlflow.model import model_payload

    fit, trainer = tracked.run.evaluate(records)
    spec = tracked.run.spec
    torch.save(model_payload(trainer, spec.train, spec.dataset), spec.run_dir / "model-payload.pt")
    return fit


@task(name="report", task_run_name="report", cache_policy=NO_CACHE, persist_result=False)
def report_task(tracked: TrackedRun, fit: FitResult, step_records: list[dict], data: dict) -> dict:
    """Parent-run metrics and plots, the packaged model (logged and registered), the JSON summary."""
    spec = tracked.run.spec
    summary = summarise(spec.dataset, spec.train.task, [spec.seed], [fit], tracked.run.inputs().graph.num_classes)
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
    return report(tracked, fit, step_records, data, summary)


# -- the flow ---------------------------------------------------------------------------------------


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return run_info.flow_run_name(flow_run.parameters)


@flow(name="train-pipeline", flow_run_name=_flow_run_name, log_prints=True)
def train_pipeline(dataset: str = "cora", task: str = "classify", config: dict | str | None = None,
                   seed: int = 0, split_seed: int | None = None, device: str = "auto",
                   run_tags: dict | None = None, keep_checkpoints: bool = False,
                   threads: int | None = None, out_of_core: str = "auto", data_dir: str | None = None,
                   retrain: bool = False) -> dict:
    """Fetch, validate, normalise, propagate, train every module step, evaluate, report (tracked).

    Returns the ``dgnn train`` summary plus ``mlflow_run_id``, ``experiment``, ``data_version``,
    ``model_uri`` and the registry outcome. After a successful run the per-step trainer
    checkpoints are deleted unless ``keep_checkpoints`` (the module weights, step records and
    predictions stay; the module weights are also in MLflow), so an identical rerun trains again.
    ``threads``: torch threads for this process (None: :func:`dgnn.threads.choose_threads`).
    ``out_of_core``: "on", "off" or "auto" (:func:`dgnn.node_store.out_of_core_for`): the node
    tensors as files in the run folder, for graphs whose tensors outgrow memory. ``data_dir``: the
    data folder (default: ``$DGNN_DATA_DIR``, else ``./data``). ``retrain``: train even when
    :func:`flows.data_tasks.check_source` finds the run done already (then returned, ``skipped``).
    """
    from prefect.runtime import flow_run

    started, data_dir = time.perf_counter(), str(data_root(data_dir).resolve())
    run_config, device = resolve_config(dataset, task, config), str(resolve_device(device))
    split_seed = run_config.split_seed if split_seed is None else split_seed
    identity = dict(task=task, config=config, run_tags=run_tags, seed=seed, split_seed=split_seed, device=device)
    if (source := data_tasks.check_source(dataset, data_dir, None if retrain else identity)) and source["earlier"]:
        return source["earlier"]
    run_config, choice, threads = _chosen_config(run_config, dataset, seed, split_seed, device, threads, data_dir)
    run_tags = {**(run_tags or {}), **({"config_choice": choice["name"]} if choice else {}),
                **({"source_state": source["state"]} if source else {})}
    train = run_config.train
    with pipeline_record(run_config, dataset=dataset, task=task, seed=seed, split_seed=split_seed, device=device,
                         config=config, run_tags=run_tags, flow_run_id=flow_run.id or "") as record:
        record.link_prefect(dataset, task, source and source["drift"])
        data = run_data_tasks(dataset, split_seed, train, data_dir)
        threads = apply_threads(data["nodes"], threads)
        on_disk = out_of_core_for(out_of_core, data["nodes"], data["features"], train)
        run = StepwiseRun(RunSpec(dataset, train, seed, split_seed, device, data_dir,
                                  data["data_content_hash"], settings.runs_dir(), on_disk),
                          block_runner(flow_dask_address()))
        summary = train_and_report(record.data_ready(run, run_config, data, threads, choice), data, keep_checkpoints)
        return record.finish(summary, time.perf_counter() - started)


def _chosen_config(run_config: RunConfig | Portfolio, dataset: str, seed: int, split_seed: int, device: str,
                   threads: int | None, data_dir: str) -> tuple[RunConfig, dict | None, int | None]:
    """A run config as it is, or a portfolio's candidate chosen on validation (after the data tasks
    of its first input); with the choice (None for a run config) and the threads then applied."""
    if not isinstance(run_config, Portfolio):
        return run_config, None, threads
    data = run_data_tasks(dataset, split_seed, first_train(run_config), data_dir)
    threads = apply_threads(data["nodes"], threads)
    choice = choose_task(dataset, run_config, seed, split_seed, device, data["data_content_hash"], data_dir)
    return RunConfig(dataset=dataset, split_seed=split_seed, train=choice["train"]), choice, threads


def train_and_report(tracked: TrackedRun, data: dict, keep_checkpoints: bool) -> dict:
    """One task per module step (a stage that stops early skips to the next one), the config's
    post-processing, evaluate and report; the checkpoints then go unless ``keep_checkpoints``."""
    run, train = tracked.run, tracked.run.spec.train
    records, index = [], 0
    with tracking.background_logging(tracked.parent_run_id) as child_logger, run.lock():
        while index < len(run.plan):
            records.append(module_task(tracked, index, run.plan[index].name))
            index = records[-1]["next"]
        if train.correct_smooth or train.cluster_refine:
            post_process_task(tracked, records, "correct-and-smooth" if train.correct_smooth else "refine-clusters")
        summary = report_task(tracked, evaluate_task(tracked, records), records, data)
        child_logger.drain()
        if not keep_checkpoints:
            run.remove_checkpoints(records)
    return summary


def prepare_process(uri: str | None = None) -> None:
    """Open the MLflow store and import what a first run imports on its way, ahead of it (e.g.
    while the ephemeral Prefect server boots): the run itself then finds both done."""
    tracking.client(uri)
    import mlflow.pyfunc  # noqa: F401
    import torch._dynamo  # noqa: F401 - imported by the first torch.optim optimizer built (~1 s)
    from matplotlib.backends import backend_agg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401


def run_pipeline(*, dask_address: str | None = None, dask_workers: int | None = None, **parameters) -> dict:
    """``train_pipeline(**parameters)`` as ``dgnn run`` calls it; with ``dask_address`` (a
    scheduler) or ``dask_workers`` (a local cluster) on Dask, where the propagation blocks run
    (:mod:`flows.dask_cluster`; the module steps stay in this process).

    Flow-run heartbeats let a long-lived Prefect server mark a crashed run; the ephemeral server
    dies with this process, so there they would only add the wait (up to 1 s) for the heartbeat
    thread at the end of the run. They stay on when ``PREFECT_API_URL`` names a server.
    """
    with contextlib.ExitStack() as stack:
        if not os.environ.get("PREFECT_API_URL"):
            stack.enter_context(server.without_heartbeats())
        flow = train_pipeline
        if dask_address or dask_workers:
            from flows.dask_cluster import on_dask  # here: it imports dask.distributed
            flow = flow.with_options(task_runner=stack.enter_context(on_dask(dask_address, dask_workers or 2)))
        return flow(**parameters)
