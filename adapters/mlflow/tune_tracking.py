"""MLflow records of a ``dgnn tune`` study: one nested child run per trial, the plots and the best
config of the parent run.

A trial's child run carries the trial's times (so Duration is the trial's), its drawn parameters
and the flattened config, the validation criterion after every forward pass (step = pass), and
its state: FINISHED (complete), KILLED (pruned) or FAILED.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import yaml
from mlflow.entities import Metric
from optuna.trial import FrozenTrial, TrialState

from dgnn.processes import owned_temp_dir
from adapters.mlflow import plots, tracking

STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


def _ms(when) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


class TrialLogger:
    """Optuna callback: log each finished trial as a child run of ``parent_run_id``."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, label: str):
        self.uri, self.experiment_id, self.parent, self.label = tracking_uri, experiment_id, parent_run_id, label

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        client = tracking.client(self.uri)
        attrs = trial.user_attrs
        candidate = attrs.get("candidate") or ""
        run = client.create_run(
            self.experiment_id, run_name=f"{self.label}-trial{trial.number}"
            + (f"-{candidate}" if candidate else ""), start_time=_ms(trial.datetime_start),
            tags={tracking.PARENT_TAG: self.parent, "trial": str(trial.number), "state": trial.state.name.lower(),
                  "candidate": candidate or "none", "study": study.study_name,
                  "worker_pid": str(attrs.get("pid", ""))})
        run_id = run.info.run_id
        end = _ms(trial.datetime_complete)
        metrics = [Metric("val_criterion", v, _ms(trial.datetime_start) or 0, step)
                   for step, v in sorted(trial.intermediate_values.items())]
        final = {**attrs.get("metrics", {}), "seconds": attrs.get("seconds"),
                 "criterion": trial.value, "best_pass": attrs.get("best_pass")}
        metrics += tracking.metric_items(final)
        params = {f"search.{k}": v for k, v in trial.params.items()}
        params |= tracking.flatten(attrs.get("config", {}))
        tracking.log_batch(client, run_id, params=params, metrics=metrics)
        client.set_terminated(run_id, status=STATUS.get(trial.state, "FAILED"), end_time=end)


def log_study(tracking_uri: str, parent_run_id: str, study: optuna.Study, best_config: dict) -> None:
    """The best config as YAML, the optimisation history and the parameter importances as PNGs."""
    client = tracking.client(tracking_uri)
    with owned_temp_dir("tune") as tmp:
        folder = Path(tmp)
        (folder / "best_config.yaml").write_text(yaml.safe_dump(best_config, sort_keys=False))
        client.log_artifact(parent_run_id, str(folder / "best_config.yaml"))
        plots = folder / "plots"
        plots.mkdir()
        plot_history(study, plots / "optimization_history.png")
        plot_importances(study, plots / "param_importances.png")
        client.log_artifacts(parent_run_id, str(plots), "plots")


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def plot_history(study: optuna.Study, path: Path) -> Path:
    """Each trial's criterion (pruned trials: their last reported pass) and the best so far."""
    fig = plots.figure(6, 3.6)
    ax = fig.subplots()
    best, xs, ys, colors = float("-inf"), [], [], []
    bests = []
    for t in sorted(_finished(study), key=lambda t: t.number):
        value = t.value if t.state == TrialState.COMPLETE else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        if value is None:
            continue
        xs.append(t.number)
        ys.append(value)
        colors.append("tab:blue" if t.state == TrialState.COMPLETE else "tab:grey")
        if t.state == TrialState.COMPLETE:
            best = max(best, value)
        bests.append(best)
    ax.scatter(xs, ys, c=colors, s=14, label="trial (grey: pruned)")
    ax.step(xs, bests, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation criterion")
    ax.set_title(study.study_name, fontsize=8)
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def plot_importances(study: optuna.Study, path: Path) -> Path:
    """fANOVA importance of each searched parameter (needs a few complete trials with parameters)."""
    fig = plots.figure(6, 3.6)
    ax = fig.subplots()
    try:
        with warnings.catch_warnings():  # a short tune always has sparse regimes: a warning per parameter says nothing
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as err:
        importances = {}
        ax.text(0.5, 0.5, f"not enough complete trials: {err}", ha="center", wrap=True, fontsize=7)
    names = list(importances)[:15][::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA)")
    ax.tick_params(axis="y", labelsize=7)
    fig.subplots_adjust(left=0.3)
    return plots.save(fig, path)
