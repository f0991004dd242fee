"""The MLflow child run of one module step: opened before the step trains, so it shows (RUNNING)
while the module trains and its Duration is the step's; closed after it with the step's record.

Loss points carry their SGD step and the wall time of that step's loss; the first ones arrive
while the step trains (:func:`stream_losses`), the rest when it closes. The ``pass_*`` metrics of
the forward pass that the step ends are logged at step = pass index, as on the parent run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dgnn.processes import owned_temp_dir
from adapters.mlflow import tracking
from adapters.mlflow.tracked_run import TrackedRun


def open_step_run(tracked: TrackedRun, index: int) -> str:
    """Start the child run of step ``index`` (tags, the module's params); returns its id."""
    spec, step = tracked.run.spec, tracked.run.plan[index]
    params = {f"module.{k}": v for k, v in spec.train.modules[step.module].model_dump(mode="json").items()} | {
        "direction": step.direction, "pass_index": step.pass_index, "module_index": step.module + 1,
        "step_index": index, "seed": spec.seed, "eta": spec.train.eta, "keep_own_loss": spec.train.keep_own_loss,
    }
    tags = {"direction": step.direction, "pass_index": step.pass_index, "module_index": step.module + 1,
            "step_index": index, "step": step.name, "run_key": spec.key}
    return tracking.start_run(tracking.client(tracked.tracking_uri), tracked.experiment_id, step.name,
                              tags=tags, params=params, parent_id=tracked.parent_run_id)


def stream_losses(tracked: TrackedRun, run_id: str, first: int, losses: list[float], times: list[float]) -> None:
    """Losses of SGD steps ``first``, ``first + 1``, ... while the step trains (on the flow's
    background logger, so training goes on)."""
    tracking.log_later(tracked.parent_run_id, _log_losses, tracked, run_id, first, losses, times)


def _log_losses(tracked: TrackedRun, run_id: str, first: int, losses: list[float], times: list[float]) -> None:
    tracking.log_batch(tracking.client(tracked.tracking_uri), run_id,
                       metrics=tracking.series_items("loss", losses, first, times))


def close_step_run(tracked: TrackedRun, run_id: str, record: dict, checkpoint: Path, ended_ms: int,
                   streamed: int) -> None:
    """Log the step's metrics (the losses after the ``streamed`` first) and module checkpoint,
    then end the run FINISHED at ``ended_ms``."""
    client = tracking.client(tracked.tracking_uri)
    try:
        tracking.log_batch(client, run_id, tags={"resumed_from_checkpoint": str(record["resumed"]).lower()},
                           metrics=_metrics(record, streamed))
        with owned_temp_dir("ckpt") as tmp:
            target = Path(tmp) / "module.pt"
            shutil.copyfile(checkpoint, target)
            client.log_artifact(run_id, str(target), "checkpoint")
        tracking.end_run(client, run_id, end_time=ended_ms)
    except BaseException as err:
        tracking.fail_run(client, run_id, err)
        raise


def fail_step_run(tracked: TrackedRun, run_id: str, error: BaseException, ended_ms: int) -> None:
    tracking.fail_run(tracking.client(tracked.tracking_uri), run_id, error, end_time=ended_ms)


def _metrics(record: dict, streamed: int) -> list:
    # Records saved before loss times were kept have none: their points get the time of logging.
    times = record.get("loss_times")
    items = tracking.series_items("loss", record["losses"][streamed:], streamed + 1, times and times[streamed:])
    items += tracking.metric_items({"seconds": record["seconds"], "steps_run": record["steps_run"],
                                    "final_loss": record["losses"][-1], "val_acc": record["val_metric"]})
    if record["pass"] is not None:
        done = record["pass"]
        items += tracking.metric_items({f"pass_{k}": v for k, v in done["metrics"].items()}, done["pass_index"])
    return items
