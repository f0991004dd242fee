"""``dgnn tune``'s search: an Optuna study (TPE sampler, median pruner) over a :class:`SearchSpace`.

Every trial trains one config with the same seeds (one by default) and is scored by the mean of
the trainer's own selection criterion: validation accuracy (classify) or the modularity of k-means
on the embedding (cluster, no labels). The score after each forward pass is reported to the pruner, which stops a trial whose
pass is below the median of earlier trials at that pass. The first trials of a study are the
candidates of the default portfolio, so a search never ends below the default on validation.

The study lives in an RDB storage (a sqlite URL by default): a killed search resumes where it
stopped, and parallel workers share it. Test labels are never read: a trial records only training
and validation figures, and the test metrics of the chosen config are computed once, at the end.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from dgnn.config import Portfolio, TrainConfig, load_config
from dgnn.experiment import Inputs
from dgnn.processes import pid_alive
from dgnn.trainer import FitResult, PassResult
from dgnn.tune.space import SearchSpace

DONE = (TrialState.COMPLETE, TrialState.PRUNED)
STARTUP_SECONDS = 60  # a RUNNING trial that names no process after this long was abandoned
# Figures a trial may record: none is computed from test labels or, for clustering, from labels.
SEARCH_METRICS = {"classify": ("train_acc", "val_acc", "val_loss"), "cluster": ("modularity",)}


def study_name(dataset: str, task: str, split_seed: int, space_file: str | Path, seeds: list[int]) -> str:
    """Same dataset, split, search space and seeds: same study, so the same command resumes it."""
    digest = hashlib.sha256(Path(space_file).read_bytes()).hexdigest()[:10]
    shown = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return f"{dataset}-{task}-split{split_seed}-seed{shown}-{digest}"


def open_study(name: str, storage_url: str, seed: int) -> optuna.Study:
    """Create or load the study ``name`` in ``storage_url`` (maximising the criterion)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=8),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0))


def _stale(trial: FrozenTrial) -> bool:
    if "host" not in trial.user_attrs:  # killed before its objective began, or just created
        return (datetime.datetime.now() - trial.datetime_start).total_seconds() > STARTUP_SECONDS
    return trial.user_attrs["host"] == socket.gethostname() and not pid_alive(trial.user_attrs["pid"])


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark RUNNING trials whose process on this host is gone (a killed search) as FAIL."""
    stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if _stale(t)]
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return [t.number for t in stale]


class Objective:
    """Scores one trial's config on validation data; see the module docstring."""

    def __init__(self, inputs: Inputs, space: SearchSpace, *, seeds: list[int], device,
                 deadline: float | None = None):
        self.inputs, self.space, self.seeds, self.device, self.deadline = inputs, space, seeds, device, deadline
        portfolio = candidates_of(space.candidates)
        self.candidates = portfolio.candidates if portfolio else {}

    def _untried_candidate(self, study: optuna.Study, number: int) -> str | None:
        taken = {t.user_attrs.get("candidate") for t in study.get_trials(deepcopy=False)
                 if t.number != number and t.state != TrialState.FAIL}
        return next((name for name in self.candidates if name not in taken), None)

    def __call__(self, trial: optuna.Trial) -> float:
        candidate = self._untried_candidate(trial.study, trial.number)
        config = self.candidates[candidate] if candidate else self.space.suggest(trial)
        for key, value in {"candidate": candidate or "", "config": config.model_dump(mode="json"),
                           "pid": os.getpid(), "host": socket.gethostname()}.items():
            trial.set_user_attr(key, value)
        start = time.perf_counter()
        try:
            if self.out_of_time(trial.study):  # before the first propagation, which cannot be cut
                raise optuna.TrialPruned("time budget spent")
            # the pruner watches the first seed's passes; the others only average the score
            results = [self._fit(trial, config, seed, prunable=candidate is None and i == 0)
                       for i, seed in enumerate(self.seeds)]
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - start)
        trial.set_user_attr("metrics", mean_metrics(results, SEARCH_METRICS[config.task]))
        trial.set_user_attr("best_pass", results[0].best_pass)
        return statistics.fmean(r.criterion for r in results)

    def out_of_time(self, study: optuna.Study) -> bool:
        """Past the deadline once the best config's retraining (:func:`finish`) is set aside; never
        before one trial is complete, so a search always has a result."""
        if self.deadline is None or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return False
        reserve = 1.25 * _best_seconds(study) + 1.0  # retraining, plus the study's own bookkeeping
        return time.monotonic() + reserve > self.deadline

    def _fit(self, trial: optuna.Trial, config: TrainConfig, seed: int, prunable: bool) -> FitResult:
        def on_step(_) -> None:
            if self.out_of_time(trial.study):  # candidates too: the budget covers the whole search
                raise optuna.TrialPruned("time budget spent")

        def on_pass(p: PassResult) -> None:
            trial.report(p.criterion, p.pass_index)
            if prunable and trial.should_prune():
                raise optuna.TrialPruned(f"pass {p.pass_index}: criterion {p.criterion:.4f} below the median")

        return self.inputs.trainer(config, seed, self.device).fit(on_step=on_step, on_pass=on_pass)


def mean_metrics(results: list[FitResult], names) -> dict[str, float]:
    return {k: statistics.fmean(r.metrics[k] for r in results) for k in names}


def _best_seconds(study: optuna.Study) -> float:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value).user_attrs.get("seconds", 0.0) if complete else 0.0


def optimize(study: optuna.Study, objective: Objective, *, trials: int | None, budget_seconds: float | None,
             callbacks=()) -> None:
    """Run trials until the study holds ``trials`` finished ones (complete or pruned, counting
    earlier runs) or ``budget_seconds`` pass, less the time the best config takes to retrain (so
    that :func:`finish` ends inside the budget too); a trial running at the deadline is cut short,
    a candidate of the default too, once one trial is complete.
    Parallel workers each finish the trial they are on, so a shared study can end with up to
    one trial per extra worker more."""
    fail_stale_trials(study)
    callbacks = list(callbacks)
    remaining = None
    if trials is not None:
        remaining = trials - len(study.get_trials(deepcopy=False, states=DONE))
        if remaining <= 0:
            return
        callbacks.append(optuna.study.MaxTrialsCallback(trials, states=DONE))
    if budget_seconds is not None:
        objective.deadline = time.monotonic() + budget_seconds
        callbacks.append(lambda study, _: study.stop() if objective.out_of_time(study) else None)
    study.optimize(objective, n_trials=remaining, callbacks=callbacks, gc_after_trial=False)


@dataclass
class TuneResult:
    """The chosen config, how it was found, and its metrics (mean over the trial seeds; test
    figures computed once, here)."""

    study: str
    best_trial: int
    candidate: str
    config: TrainConfig
    criterion: float
    trials: dict[str, int]
    metrics: dict[str, float]

    def to_dict(self) -> dict:
        return {"study": self.study, "best_trial": self.best_trial, "candidate": self.candidate,
                "criterion": self.criterion, "trials": self.trials, "metrics": self.metrics,
                "architecture": self.config.describe(), "config": self.config.model_dump(mode="json")}


def best_config(study: optuna.Study) -> tuple[FrozenTrial, TrainConfig]:
    """The complete trial with the highest criterion and its config."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise RuntimeError(f"study {study.study_name!r} has no complete trial yet: give it more trials or time")
    best = study.best_trial
    return best, TrainConfig.model_validate(best.user_attrs["config"])


def finish(study: optuna.Study, inputs: Inputs, *, seeds: list[int], device) -> TuneResult:
    """Retrain the best config with the trial seeds (so the same models) and report every metric
    once."""
    best, config = best_config(study)
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    results = [inputs.trainer(config, seed, device).fit() for seed in seeds]
    return TuneResult(study.study_name, best.number, best.user_attrs.get("candidate", ""), config,
                      best.value, counts, mean_metrics(results, results[0].metrics))


def candidates_of(portfolio_file: str | Path | None) -> Portfolio | None:
    config = load_config(portfolio_file) if portfolio_file else None
    if config is not None and not isinstance(config, Portfolio):
        raise ValueError(f"{portfolio_file}: 'candidates' must name a portfolio file (with 'candidates:')")
    return config


def tune(inputs: Inputs, space: SearchSpace, *, storage_url: str, name: str, trials: int | None = None,
         budget_seconds: float | None = None, seeds: list[int] = (0,), device="cpu", callbacks=()) -> TuneResult:
    """Open (or resume) the study, run the search in this process, and finish it."""
    if trials is None and budget_seconds is None:
        raise ValueError("give a number of trials or a time budget")
    study = open_study(name, storage_url, seeds[0])
    optimize(study, Objective(inputs, space, seeds=list(seeds), device=device), trials=trials,
             budget_seconds=budget_seconds, callbacks=callbacks)
    return finish(study, inputs, seeds=list(seeds), device=device)
