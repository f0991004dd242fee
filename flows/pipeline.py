"""The pipeline: ``train_pipeline`` chains the data tasks, one task per module step, evaluate, report.

    fetch -> validate -> normalise -> propagate -> FT0-m1 .. FT0-mL -> BT1-mL .. BT1-m1 -> FT1-m1 ..
          -> evaluate -> report

* Data tasks (``flows.data_tasks``, DVC-backed) are cached across processes on their inputs and
  source (plus the data folder and the dataset's ``params.yaml`` entry), with results persisted
  under ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``; a stage whose output is missing runs again and
  refreshes its cache entry; validate (the integrity check) always runs; fetch retries transient
  network failures (never a full disk).
* A module task takes the trainer the previous step left: from memory when this process ran that
  step, else rebuilt from the stored data plus that step's checkpoint file
  (``<runs dir>/<run key>/NN-<step>.pt``, which names the files of its node-sized tensors). It
  runs one :class:`dgnn.trainer.Step`, saves its own checkpoint and logs one MLflow child run
  (:mod:`flows.step_runs`). The run key hashes dataset, config, seed, split seed and data version, so a rerun after a
  failure finds the finished steps and resumes (checkpoints carry the RNG states: the result
  equals an uninterrupted run, and ``dgnn train``). One run at a time holds a run folder: an
  identical run started meanwhile fails at once (``flows.checkpoints.run_lock``).
* Testing hook: ``DGNN_FAIL_AT=FT0-m2`` (comma-separated step names) makes that module task fail
  before it trains.
* Every MLflow run this flow opens is closed: FINISHED, FAILED with the error as a tag, or KILLED
  with an ``interrupted`` tag on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import flows  # noqa: F401 - environment defaults before prefect/mlflow are imported
import torch
import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from dgnn.config import Portfolio, RunConfig, config_task, first_train, TrainConfig, default_config_path, load_config
from dgnn.data import content_hash
from dgnn.data.layout import data_root, dataset_dir
from dgnn.data.store import is_stored, read_meta, write_atomically
from dgnn.experiment import Inputs, load_inputs, resolve_device, summarize
from dgnn.processes import owned_temp_dir
from dgnn.threads import apply_threads
from dgnn.tune.portfolio import choose
from dgnn.trainer import DecoupledTrainer, FitResult, PassResult, Step, schedule
from flows import data_tasks, plots, prefect_links, registry, run_info, settings, step_runs, tracking
from flows.checkpoints import load_checkpoint, load_tensors, remove_checkpoints, run_lock, save_checkpoint, step_file
from flows.step_progress import StepProgress, done_line

FAIL_AT_ENV = "DGNN_FAIL_AT"


# -- configuration ----------------------------------------------------------------------------------


def resolve_config(dataset: str, task: str, config=None) -> RunConfig | Portfolio:
    """A RunConfig (or Portfolio) from a path, a dict (a whole run config, just its ``train``
    part, or a portfolio) or the shipped default for ``dataset``/``task``."""
    if config is None:
        run_config = load_config(default_config_path(dataset, task))
    elif isinstance(config, (str, Path)):
        run_config = load_config(config)
    elif isinstance(config, (RunConfig, Portfolio)):
        run_config = config
    elif isinstance(config, TrainConfig):
        run_config = RunConfig(dataset=dataset, train=config)
    elif isinstance(config, dict) and "candidates" in config:
        run_config = Portfolio.model_validate(config)
    elif isinstance(config, dict):
        run_config = RunConfig.model_validate(config if "train" in config else {"train": config})
    else:
        raise TypeError(f"config must be a path, a dict or a RunConfig, not {type(config).__name__}")
    if config_task(run_config) != task:
        raise ValueError(f"the config is a {config_task(run_config)!r} config but the task is {task!r}")
    return run_config


def run_key(dataset: str, train: TrainConfig, seed: int, split_seed: int, data_version: str) -> str:
    """Names the checkpoint folder: same inputs, same folder, so a rerun resumes."""
    text = json.dumps({"dataset": dataset, "train": train.model_dump(mode="json"), "seed": seed,
                       "split_seed": split_seed, "data_version": data_version}, sort_keys=True)
    return f"{dataset}-{train.task}-s{seed}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


# -- data tasks -------------------------------------------------------------------------------------


def run_data_tasks(dataset: str, split_seed: int, train: TrainConfig | None) -> dict:
    """fetch -> validate -> normalise -> propagate; returns per-task state names, the version and
    the node count.

    The propagate stage stores module 1's power of ``train`` (other filters, and every filter
    when ``train`` is None, are computed by the trainer)."""
    first = train.modules[0] if train else None
    wanted = [first.order] if first and first.filter == "power" else []
    steps = [
        ("fetch", (dataset, split_seed)),
        ("validate", (dataset,)),
        ("normalise", (dataset,)),
        ("propagate", (dataset, wanted, train.feature_norm if train else "none")),
    ]
    states = {}
    for name, args in steps:
        state = data_tasks.run_stage(name, *args)
        state.result()  # raises the task's error
        states[name] = state.name
    version = data_tasks.data_version(dataset)
    propagated = dataset_dir(dataset) / "propagated"
    return {"states": states, "cached": [k for k, v in states.items() if v == "Cached"],
            "nodes": read_meta(dataset_dir(dataset) / "graph")["nodes"],
            "versions": version, "data_version": version["data_version"],
            "data_content_hash": read_meta(propagated)["content_hash"] if is_stored(propagated)
            else content_hash(propagated)}


# -- checkpoints ------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def stage_inputs(dataset: str, root: str, split_seed: int, version: str) -> Inputs:
    # ``version`` is only part of the cache key: new data gives new inputs.
    return load_inputs(dataset, data_dir=root, split_seed=split_seed)


def inputs_of(ctx: dict) -> Inputs:
    return stage_inputs(ctx["dataset"], ctx["data_root"], ctx["split_seed"], ctx["data_content_hash"])


def build_trainer(ctx: dict) -> DecoupledTrainer:
    return inputs_of(ctx).trainer(TrainConfig.model_validate(ctx["train"]), ctx["seed"], ctx["device"])


@task(name="choose-config", task_run_name="choose-config", cache_policy=NO_CACHE, persist_result=False)
def choose_task(dataset: str, portfolio: Portfolio, seed: int, split_seed: int, device: str,
                data_content_hash: str) -> dict:
    """The portfolio candidate with the best validation criterion for this seed."""
    inputs = stage_inputs(dataset, str(data_root().resolve()), split_seed, data_content_hash)
    choice = choose(inputs, portfolio, seed, device, verbose=True)
    return {"name": choice.name, "train": choice.config, "scores": choice.scores, "seconds": choice.seconds}


# The trainer that this process's last module task of a run left (by run folder): the next task of
# the run, or evaluate, continues from memory instead of rebuilding the trainer and reading back
# the checkpoint just written. The checkpoint files stay the record that resume and other processes
# (Dask workers) read.
_LIVE: dict[str, tuple[int, str, DecoupledTrainer, torch.Tensor]] = {}


def trainer_after(ctx: dict, index: int) -> DecoupledTrainer:
    """The trainer as saved after step ``index`` of the run (a fresh one for ``index`` -1)."""
    live = _LIVE.pop(ctx["run_dir"], None)  # taken: a step that fails leaves no half-trained trainer
    if live is not None and live[:2] == (index, ctx["device"]):
        torch.set_rng_state(live[3])  # what loading the checkpoint would restore
        return live[2]
    trainer = build_trainer(ctx)
    if index >= 0:
        step = schedule(trainer.config.num_modules, trainer.config.bp_count)[index]
        load_checkpoint(trainer, step_file(Path(ctx["run_dir"]), index, step))
    return trainer


def _write_json(path: Path, data) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=float)))


# -- module task ------------------------------------------------------------------------------------


def _check_fault_injection(step: Step) -> None:
    targets = {t.strip() for t in os.environ.get(FAIL_AT_ENV, "").split(",") if t.strip()}
    if step.name in targets:
        raise RuntimeError(f"injected failure ({FAIL_AT_ENV}={os.environ[FAIL_AT_ENV]})")


def execute_step(ctx: dict, index: int, step: Step, on_sgd) -> dict:
    """Run (or find, if already saved) step ``index``; returns the record saved beside the checkpoint.
    ``on_sgd``: the trainer's progress hook (:meth:`DecoupledTrainer.run_step`)."""
    run_dir = Path(ctx["run_dir"])
    ckpt = step_file(run_dir, index, step)
    record_file = ckpt.with_suffix(".json")
    if ckpt.exists() and record_file.exists():
        return {**json.loads(record_file.read_text()), "resumed": True}
    _check_fault_injection(step)
    trainer = trainer_after(ctx, index - 1)
    result = trainer.run_step(step, on_sgd)
    record = {
        "index": index, "name": step.name, "direction": step.direction, "pass_index": step.pass_index,
        "module": step.module, "losses": result.losses, "loss_times": result.loss_times,
        "val_metric": result.val_metric, "seconds": result.seconds, "steps_run": result.steps_run,
        "pass": None, "stop": False,
    }
    if step.direction == "forward" and step.module == trainer.config.num_modules - 1:
        record["pass"] = asdict(trainer.end_forward_pass(step.pass_index))
        record["stop"] = trainer.should_stop()
    torch.save(trainer.modules[step.module].state_dict(), ckpt.with_suffix(".module.pt"))
    save_checkpoint(trainer, ckpt)
    _write_json(record_file, record)
    _LIVE[ctx["run_dir"]] = (index, ctx["device"], trainer, torch.get_rng_state())
    return {**record, "resumed": False}


class ModuleStepError(RuntimeError):
    """A module task failed; the message names the step, its direction, pass and module."""


@task(name="module-step", task_run_name="{step_name}", cache_policy=NO_CACHE, persist_result=False)
def module_task(ctx: dict, index: int, step_name: str, direction: str, pass_index: int, module: int) -> dict:
    step = Step(direction, pass_index, module)
    child = step_runs.open_step_run(ctx, index, step)  # RUNNING in MLflow while the step trains
    logger = get_run_logger()
    progress = StepProgress(logger.info, functools.partial(step_runs.stream_losses, ctx, child))
    try:
        record = execute_step(ctx, index, step, progress)
    except BaseException as err:
        tracking.log_later(ctx["parent_run_id"], step_runs.fail_step_run, ctx, child, err, tracking.now_ms())
        if not isinstance(err, Exception):
            raise  # Ctrl-C, SIGTERM: left as they are, so the CLI reports an interruption, not a failure
        raise ModuleStepError(
            f"module task {step.name} failed ({direction} pass {pass_index}, module {module + 1}, "
            f"step {index + 1}): {type(err).__name__}: {err}"
        ) from err
    checkpoint = step_file(Path(ctx["run_dir"]), index, step).with_suffix(".module.pt")
    tracking.log_later(ctx["parent_run_id"], step_runs.close_step_run, ctx, child, record, checkpoint,
                       tracking.now_ms(), progress.streamed)
    if not record["resumed"]:
        logger.info(done_line(record))
    if record["pass"]:
        p = record["pass"]
        shown = " ".join(f"{k}={v:.4f}" for k, v in p["metrics"].items())
        logger.info(f"pass {p['pass_index']}: {shown}{' *best*' if p['is_best'] else ''}")
    return {k: v for k, v in record.items() if k not in ("losses", "loss_times")} | {
        "final_loss": record["losses"][-1]}


# -- evaluate and report ----------------------------------------------------------------------------


@task(name="evaluate", task_run_name="evaluate", cache_policy=NO_CACHE, persist_result=False)
def evaluate_task(ctx: dict, last_index: int) -> dict:
    """Restore the selected pass from the last checkpoint; save predictions, embedding, model payload."""
    from flows.model import model_payload

    run_dir = Path(ctx["run_dir"])
    trainer = trainer_after(ctx, last_index)
    trainer.restore_best()
    torch.save({"prediction": trainer.predict().cpu(), "embedding": trainer.embed().cpu()},
               run_dir / "predictions.pt")
    torch.save(model_payload(trainer, trainer.config, ctx["dataset"]), run_dir / "model-payload.pt")
    best = trainer.best
    return {
        "best_pass": best["pass_index"],
        "criterion": best["criterion"],
        "criterion_name": "val_acc" if trainer.supervised else "modularity",
        "metrics": best["metrics"],
        "passes": [asdict(p) for p in trainer.passes],
        "predictions_path": str(run_dir / "predictions.pt"),
    }


@task(name="report", task_run_name="report", cache_policy=NO_CACHE, persist_result=False)
def report_task(ctx: dict, evaluation: dict, step_records: list[dict], data: dict) -> dict:
    """Parent-run metrics and plots, the packaged model (logged and registered), the JSON summary."""
    from flows.model import save_packaged_model

    client = tracking.client(ctx["tracking_uri"])
    parent = ctx["parent_run_id"]
    run_dir = Path(ctx["run_dir"])
    train = TrainConfig.model_validate(ctx["train"])
    passes = [PassResult(**p) for p in evaluation["passes"]]
    train_seconds = sum(r["seconds"] for r in step_records)
    fit = FitResult(task=train.task, best_pass=evaluation["best_pass"], metrics=evaluation["metrics"],
                    passes=passes, train_seconds=train_seconds)
    summary = summarize(ctx["dataset"], train.task, [ctx["seed"]], [fit], inputs_of(ctx).graph.num_classes)
    for warning in summary["warnings"]:
        print(f"warning: {warning}")

    final = {**evaluation["metrics"], "best_pass": evaluation["best_pass"], "train_seconds": train_seconds,
             "resumed_steps": sum(r["resumed"] for r in step_records)}
    per_pass = [item for p in evaluation["passes"]
                for item in tracking.metric_items({f"pass_{k}": v for k, v in p["metrics"].items()}, p["pass_index"])]
    tracking.log_batch(client, parent, metrics=[*tracking.metric_items(final), *per_pass])
    losses = [{**r, "losses": json.loads(step_file(run_dir, r["index"], Step(
        r["direction"], r["pass_index"], r["module"])).with_suffix(".json").read_text())["losses"]}
              for r in step_records]
    with owned_temp_dir("report") as tmp:
        tmp = Path(tmp)
        plot_dir = tmp / "plots"
        plot_dir.mkdir()
        plots.save(plots.loss_figure(losses), plot_dir / "loss_curves.png")
        if len(evaluation["passes"]) > 1:  # one pass is no curve: its metrics are the run's
            plots.save(plots.pass_figure([p | {"is_best_final": p["pass_index"] == evaluation["best_pass"]}
                                          for p in evaluation["passes"]]), plot_dir / "metric_per_pass.png")
        client.log_artifacts(parent, str(plot_dir), "plots")
        save_packaged_model(load_tensors(run_dir / "model-payload.pt"), tmp / "model")
        client.log_artifacts(parent, str(tmp / "model"), "model")
    registered = registry.register_model(
        client, tracking.model_name(ctx["dataset"], train.task), parent, "model", evaluation["criterion"],
        evaluation["criterion_name"], ctx["model_identity"], ctx.get("model_tags"),
        run_info.model_description(ctx["dataset"], train.task, evaluation["criterion_name"]))
    tracking.set_tags(client, parent, {"registered_model": registered["name"],
                                       "registered_version": registered["version"] or "none",
                                       "registry_decision": registered["decision"],
                                       "champion": str(registered["champion"]).lower(),
                                       "warnings": " | ".join(summary["warnings"]) or "none"})
    summary |= {
        "mlflow_run_id": parent,
        "experiment": ctx["experiment"],
        "experiment_id": ctx["experiment_id"],
        "tracking_uri": ctx["tracking_uri"],
        "data_version": ctx["data_version"],
        "data_content_hash": ctx["data_content_hash"],
        "model_uri": f"runs:/{parent}/model",
        "registered_model": registered,
        "run_key": ctx["run_key"],
        "checkpoint_dir": str(run_dir),
        "cached_tasks": data["cached"],
        "task_states": data["states"],
        "resumed_steps": [r["name"] for r in step_records if r["resumed"]],
        "child_runs": len(step_records),
        "threads": ctx["threads"],
    }
    tracking.log_json(client, parent, summary, "summary.json")
    return summary


# -- the flow ---------------------------------------------------------------------------------------


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return run_info.flow_run_name(flow_run.parameters)


@flow(name="train-pipeline", flow_run_name=_flow_run_name, log_prints=True)
def train_pipeline(dataset: str = "cora", task: str = "classify", config: dict | str | None = None,
                   seed: int = 0, split_seed: int | None = None, device: str = "auto",
                   run_tags: dict | None = None, keep_checkpoints: bool = False,
                   threads: int | None = None) -> dict:
    """Fetch, validate, normalise, propagate, train every module step, evaluate, report (tracked).

    Returns the ``dgnn train`` summary plus ``mlflow_run_id``, ``experiment``, ``data_version``,
    ``model_uri`` and the registry outcome. After a successful run the per-step trainer
    checkpoints are deleted unless ``keep_checkpoints`` (the module weights, step records and
    predictions stay; the module weights are also in MLflow), so an identical rerun trains again.
    ``threads``: torch threads for this process (None: :func:`dgnn.threads.choose_threads`).
    """
    from prefect.runtime import flow_run

    started = time.perf_counter()
    run_config = resolve_config(dataset, task, config)
    split_seed = run_config.split_seed if split_seed is None else split_seed
    device = str(resolve_device(device))
    choice = None
    if isinstance(run_config, Portfolio):
        data = run_data_tasks(dataset, split_seed, first_train(run_config))
        threads = apply_threads(data["nodes"], threads)
        choice = choose_task(dataset, run_config, seed, split_seed, device, data["data_content_hash"])
        run_config = RunConfig(dataset=dataset, split_seed=split_seed, train=choice["train"])
        run_tags = {**(run_tags or {}), "config_choice": choice["name"]}
    train = run_config.train
    uri = settings.tracking_uri()
    client = tracking.client(uri)
    experiment = tracking.experiment_name(dataset, task)
    experiment_id = tracking.ensure_experiment(client, experiment, run_info.experiment_description(dataset, task))
    tracking.reap_stale_runs(client, experiment_id)
    params = tracking.flatten(run_config.model_dump(mode="json") | {"dataset": dataset}) | {
        "seed": seed, "split_seed": split_seed, "device": device,
        **run_info.config_source(config, dataset, task, run_tags)}
    config_name = run_info.config_name(params["config_file"], run_tags)
    parent_name = run_info.run_name(dataset, config_name, seed, run_tags)
    tags = {"dataset": dataset, "task": task, "seed": seed, "config_name": config_name,
            "config_hash": run_info.config_hash(run_config), "prefect.flow_run_id": flow_run.id or "",
            "prefect.flow_run_name": parent_name, **tracking.git_commit(), **(run_tags or {})}
    parent = tracking.start_run(client, experiment_id, parent_name, tags=tags, params=params)
    try:
        prefect_links.label_flow_run(parent_name, {"dataset": dataset, "task": task, "config": config_name})
        prefect_links.link_mlflow_run(uri, experiment_id, parent, parent_name)
        data = run_data_tasks(dataset, split_seed, train)
        threads = apply_threads(data["nodes"], threads)
        key = run_key(dataset, train, seed, split_seed, data["data_content_hash"])
        run_dir = settings.runs_dir() / key
        run_dir.mkdir(parents=True, exist_ok=True)
        config_text = yaml.safe_dump(run_config.model_dump(mode="json"), sort_keys=False)
        write_atomically(run_dir / "config.yaml", lambda tmp: tmp.write_text(config_text))  # an identical run may write it too
        tracking.set_tags(client, parent, {
            "data_version": data["data_version"], "data_content_hash": data["data_content_hash"],
            "data_tracked": str(data["data_version"] != "untracked").lower(), "run_key": key,
            "threads": threads,
            **{f"dvc.{k}": v for k, v in data["versions"].items() if k != "data_version"}})
        client.log_artifact(parent, str(run_dir / "config.yaml"))
        run_info.log_training_data(client, parent, dataset, data)
        if choice is not None:
            tracking.log_metrics(client, parent, {f"candidate_criterion.{name}": value
                                                  for name, value in choice["scores"].items()})
        ctx = {"dataset": dataset, "train": train.model_dump(mode="json"), "seed": seed,
               "split_seed": split_seed, "device": device, "data_root": str(data_root().resolve()),
               "data_version": data["data_version"], "data_content_hash": data["data_content_hash"],
               "run_key": key, "run_dir": str(run_dir), "threads": threads,
               "model_tags": {k: v for k, v in (run_tags or {}).items() if k.startswith("tune") or k == "config_choice"},
               "tracking_uri": uri, "experiment": experiment, "experiment_id": experiment_id,
               "parent_run_id": parent, "model_identity": {"data_version": data["data_version"],
               "data_content_hash": data["data_content_hash"], "config_hash": tags["config_hash"]}}
        records = []
        with tracking.background_logging(parent) as child_logger, run_lock(run_dir):
            for index, step in enumerate(schedule(train.num_modules, train.bp_count)):
                record = module_task(ctx, index, step.name, step.direction, step.pass_index, step.module)
                records.append(record)
                if record["stop"]:
                    break
            evaluation = evaluate_task(ctx, records[-1]["index"])
            summary = report_task(ctx, evaluation, records, data)
            child_logger.drain()
            if not keep_checkpoints:
                remove_checkpoints(run_dir, records)
        summary["pipeline_seconds"] = time.perf_counter() - started
        tracking.log_metrics(client, parent, {"pipeline_seconds": summary["pipeline_seconds"]})
        tracking.end_run(client, parent)
        return summary
    except BaseException as err:
        tracking.fail_run(client, parent, err)
        raise


def prepare_process(uri: str | None = None) -> None:
    """Open the MLflow store and import what a first run imports on its way, ahead of it (e.g.
    while the ephemeral Prefect server boots): the run itself then finds both done."""
    tracking.client(uri)
    import mlflow.pyfunc  # noqa: F401
    import torch._dynamo  # noqa: F401 - imported by the first torch.optim optimizer built (~1 s)
    from matplotlib.backends import backend_agg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401


def run_pipeline(**parameters) -> dict:
    """``train_pipeline(**parameters)`` as ``dgnn run`` calls it.

    Flow-run heartbeats let a long-lived Prefect server mark a crashed run; the ephemeral server
    dies with this process, so there they would only add the wait (up to 1 s) for the heartbeat
    thread at the end of the run. They stay on when ``PREFECT_API_URL`` names a server.
    """
    if os.environ.get("PREFECT_API_URL"):
        return train_pipeline(**parameters)
    with _settings_without_heartbeats():
        return train_pipeline(**parameters)


_NO_HEARTBEATS: tuple = (None, None)  # (settings it was derived from, derived settings)


@contextlib.contextmanager
def _settings_without_heartbeats():
    """The current Prefect settings with heartbeats off; derived once per base settings object
    (a settings copy takes about 35 ms, a sizeable part of a short run's overhead)."""
    global _NO_HEARTBEATS
    import prefect.context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = prefect.context.get_settings_context()
    base, derived = _NO_HEARTBEATS
    if base is not context.settings:
        derived = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        _NO_HEARTBEATS = (context.settings, derived)
    with prefect.context.SettingsContext(profile=context.profile, settings=derived):
        yield
