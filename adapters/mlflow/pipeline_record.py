"""The MLflow record of one pipeline run: its parent run, opened with the run's parameters and
tags (:func:`pipeline_record`), given the data the run trains on (:meth:`PipelineRecord.data_ready`)
and closed by itself: FINISHED, FAILED with the error, or KILLED on Ctrl-C / SIGTERM, and reported
(:func:`report`). The module steps' child runs are :mod:`adapters.mlflow.step_runs`."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import yaml

from dgnn.checkpoint import load_tensors
from dgnn.config import RunConfig
from dgnn.data.stage_folders import write_atomically
from dgnn.evaluation import criterion_name as selected_by
from dgnn.processes import owned_temp_dir
from dgnn.results import FitResult
from dgnn.stepwise import StepwiseRun
from adapters.dvc import repo as dvc
from adapters.mlflow import plots, registry, run_info, tracking
from adapters.mlflow.tracked_run import TrackedRun
from adapters.prefect import links as prefect_links
from adapters.process import settings


@dataclass
class PipelineRecord:
    client: object  # MlflowClient
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    name: str
    tags: dict
    run_tags: dict

    def link_prefect(self, dataset: str, task: str, drift: dict | None = None) -> None:
        """Label the flow run with what it trains and link it to this MLflow run (Prefect's UI); the
        ``drift`` from the previous data version, if the source changed, goes to both
        (``drift.json``; a table artifact)."""
        prefect_links.label_flow_run(self.name, {"dataset": dataset, "task": task,
                                                 "config": self.tags["config_name"], "levers": self.tags["levers"]})
        prefect_links.link_mlflow_run(self.tracking_uri, self.experiment, self.experiment_id, self.parent_run_id,
                                      self.name)
        if drift:
            tracking.log_json(self.client, self.parent_run_id, drift, "drift.json")
            prefect_links.report_drift(self.experiment, drift)

    def data_ready(self, run: StepwiseRun, run_config: RunConfig, data: dict, threads: int,
                   choice: dict | None) -> TrackedRun:
        """Record what the run trains on (data versions, run key, the config as a file, the training
        data as an MLflow dataset, a portfolio's candidate scores); the run as its tasks see it."""
        run_dir = run.spec.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(run_config.model_dump(mode="json"), sort_keys=False)
        write_atomically(run_dir / "config.yaml", lambda tmp: tmp.write_text(text))  # an identical run may write it too
        tracking.set_tags(self.client, self.parent_run_id, {
            "data_version": data["data_version"], "data_content_hash": data["data_content_hash"],
            "data_tracked": str(data["data_version"] != "untracked").lower(), "run_key": run.spec.key,
            "threads": threads, "out_of_core": str(run.spec.out_of_core).lower(),
            **{dvc.stage_tag(k): v for k, v in data["versions"].items() if k != "data_version"}})
        self.client.log_artifact(self.parent_run_id, str(run_dir / "config.yaml"))
        run_info.log_training_data(self.client, self.parent_run_id, run.spec.dataset, data, run.spec.data_root)
        if choice is not None:
            tracking.log_metrics(self.client, self.parent_run_id, {
                f"candidate_criterion.{name}": value for name, value in choice["scores"].items()})
        return TrackedRun(
            run, self.tracking_uri, self.experiment, self.experiment_id, self.parent_run_id, data["data_version"],
            threads, model_identity={"data_version": data["data_version"],
                                     "data_content_hash": data["data_content_hash"],
                                     "config_hash": self.tags["config_hash"]},
            model_tags={k: v for k, v in self.run_tags.items() if k.startswith("tune") or k == "config_choice"})

    def finish(self, summary: dict, seconds: float) -> dict:
        """The summary with the whole pipeline's seconds, also logged."""
        tracking.log_metrics(self.client, self.parent_run_id, {"pipeline_seconds": seconds})
        return summary | {"pipeline_seconds": seconds}


@contextlib.contextmanager
def pipeline_record(run_config: RunConfig, *, dataset: str, task: str, seed: int, split_seed: int, device: str,
                    config, run_tags: dict, flow_run_id: str) -> Iterator[PipelineRecord]:
    """The parent run of a pipeline run of ``run_config`` on ``dataset`` (``config``: what the caller
    passed, for the config-source parameters), in the dataset's experiment (runs of killed processes
    there are closed first); ended FINISHED when the block completes, else FAILED or KILLED, and
    the error re-raised."""
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
    numbered = run_info.numbered(client, experiment_id, run_info.run_name(dataset, config_name, seed, run_tags))
    name = numbered.pop("name")
    tags = {"dataset": dataset, "task": task, "seed": seed, "config_name": config_name, **numbered,
            "levers": "+".join(train.levers()) or "none", "architecture": train.describe(),
            "config_hash": run_info.config_hash(run_config), "prefect.flow_run_id": flow_run_id,
            "prefect.flow_run_name": name, **tracking.provenance("train-pipeline"), **run_tags}
    with tracking.run_closed_by_itself(client, experiment_id, name, tags=tags, params=params) as parent:
        yield PipelineRecord(client, uri, experiment, experiment_id, parent, name, tags, run_tags)


def _rescorer(tracked: TrackedRun):
    """How the registry scores a champion of another data version on this run's: its modules on
    this graph and validation split (:meth:`adapters.mlflow.model.LoadedModel.validation_score`);
    None for clustering models (k-means assigns only the nodes it clustered) and out-of-core runs."""
    spec = tracked.run.spec
    if spec.train.task != "classify" or spec.out_of_core:
        return None

    def rescore(version) -> float:
        from adapters.mlflow.model import load
        from dgnn.data import load_graph

        graph = load_graph(spec.dataset, spec.data_root, split_seed=spec.split_seed)
        return load(f"models:/{version.name}/{version.version}").validation_score(graph, spec.train.select_metric)

    return rescore


def report(tracked: TrackedRun, fit: FitResult, step_records: list[dict], data: dict, summary: dict) -> dict:
    """The run's report on its parent run: per-pass metrics, the loss and pass plots, the packaged
    model (logged with the final metrics, registered where it beats or ties nothing: see
    :mod:`adapters.mlflow.registry`), warnings, the result on Prefect's side; returns ``summary`` (the
    ``dgnn train`` summary of ``fit``) with the run's identity, also logged as ``summary.json``."""
    from adapters.mlflow.model import save_packaged_model

    client, parent, spec = tracking.client(tracked.tracking_uri), tracked.parent_run_id, tracked.run.spec
    criterion_name = selected_by(spec.train)
    final = {**fit.metrics, "best_pass": fit.best_pass, "train_seconds": fit.train_seconds,
             "resumed_steps": sum(r["resumed"] for r in step_records)}
    per_pass = [item for p in fit.passes
                for item in tracking.metric_items({f"pass_{k}": v for k, v in p.metrics.items()}, p.pass_index)]
    tracking.log_batch(client, parent, metrics=per_pass)  # the final ones go with the model
    _log_plots(client, parent, tracked.run, fit, step_records)
    registered = registry.log_and_register(
        client, parent, lambda folder, mlflow_model: save_packaged_model(
            load_tensors(spec.run_dir / "model-payload.pt"), folder, mlflow_model), final,
        tracked.experiment, fit.criterion, criterion_name,
        tracked.model_identity, {"seed": spec.seed, "device": spec.device}, tracked.model_tags,
        run_info.model_description(spec.dataset, spec.train.task, criterion_name), _rescorer(tracked))
    tracking.set_tags(client, parent, {"warnings": " | ".join(summary["warnings"]) or "none"})
    prefect_links.report_results(tracked.experiment, final, registered)
    summary = summary | {
        "mlflow_run_id": parent, "experiment": tracked.experiment, "experiment_id": tracked.experiment_id,
        "tracking_uri": tracked.tracking_uri, "data_version": tracked.data_version,
        "data_content_hash": spec.data_content_hash, "model_uri": registered.pop("run_model_uri"),
        "registered_model": registered, "run_key": spec.key, "checkpoint_dir": str(spec.run_dir),
        "cached_tasks": data["cached"], "task_states": data["states"],
        "resumed_steps": [r["name"] for r in step_records if r["resumed"]], "child_runs": len(step_records),
        "threads": tracked.threads, "out_of_core": spec.out_of_core,
    }
    tracking.log_json(client, parent, summary, "summary.json")
    return summary


def _log_plots(client, parent: str, run: StepwiseRun, fit: FitResult, step_records: list[dict]) -> None:
    """``plots/loss_curves.png`` (every module step's losses) and, with several passes,
    ``plots/metric_per_pass.png``."""
    losses = [{**r, "losses": run.losses(r["index"])} for r in step_records]
    with owned_temp_dir("report") as tmp:
        plot_dir = Path(tmp) / "plots"
        plot_dir.mkdir()
        plots.save(plots.loss_figure(losses), plot_dir / "loss_curves.png")
        if len(fit.passes) > 1:  # one pass is no curve: its metrics are the run's
            plots.save(plots.pass_figure([asdict(p) | {"is_best_final": p.pass_index == fit.best_pass}
                                          for p in fit.passes]), plot_dir / "metric_per_pass.png")
        client.log_artifacts(parent, str(plot_dir), "plots")
