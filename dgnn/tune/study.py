"""``dgnn tune``'s search: an Optuna study (TPE sampler, median pruner) over a :class:`SearchSpace`.

Every trial trains one config with the same seeds (one by default) and is scored by the mean of
the trainer's own selection criterion: validation accuracy (classify) or the modularity of k-means
on the embedding (cluster, no labels). The score after each forward pass is reported to the pruner, which stops a trial whose
pass is below the median of earlier trials at that pass. The first trials of a study are the
candidates of the default portfolio, so a search never ends below the default on validation.

The result keeps the best few configs (``keep``, 3 by default) as a
:class:`~dgnn.config.Portfolio`: like the default, each training seed trains them and keeps the one
with the best validation criterion, so one lucky validation score does not decide alone.

The study lives in an RDB storage (a sqlite URL by default): a killed search resumes where it
stopped, and parallel workers share it. Test labels never decide anything: a trial records only
training and validation figures, and the test metrics of the chosen configs are reported once, at
the end.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from dgnn.config import Portfolio, TrainConfig, load_config
from dgnn.inputs import Inputs
from dgnn.processes import pid_alive
from dgnn.results import FitResult, PassResult
from dgnn.tune.space import SearchSpace

DONE = (TrialState.COMPLETE, TrialState.PRUNED)
KEEP = 3  # configs the result keeps (see the module docstring)
# What a trial cut at its stop time still runs, and the study's bookkeeping after it: the pieces
# that are not cut (a deeper module's propagation, a forward pass on all nodes, a pass's scores)
# took up to 1.8 s on Flickr (89k nodes) on 2 loaded cores.
TAIL_SECONDS = 2.0
STARTUP_SECONDS = 60  # a RUNNING trial that names no process after this long was abandoned
# Figures a trial may record: none is computed from test labels or, for clustering, from labels.
SEARCH_METRICS = {"classify": ("train_acc", "val_acc", "val_loss", "val_macro_f1", "val_roc_auc"),
                  "cluster": ("modularity",)}


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
                 deadline: float | None = None, keep: int = KEEP):
        self.inputs, self.space, self.seeds, self.device, self.deadline = inputs, space, seeds, device, deadline
        self.keep = keep
        self.fits: dict[int, list[FitResult]] = {}  # this process's complete trials: finish reuses them
        self._stop_at = math.inf  # when the running trial must stop (see out_of_time)
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
            self._stop_if_out_of_time(trial.study)
            self.inputs.first_input(config, on_hop=self._stop_if_past)
            # the pruner watches the first seed's passes; the others only average the score
            results = [self._fit(trial, config, seed, prunable=candidate is None and i == 0)
                       for i, seed in enumerate(self.seeds)]
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - start)
        trial.set_user_attr("fit_seconds", max(r.train_seconds for r in results))
        trial.set_user_attr("criteria", [r.criterion for r in results])
        trial.set_user_attr("metrics", mean_metrics(results, SEARCH_METRICS[config.task]))
        trial.set_user_attr("best_pass", results[0].best_pass)
        self.fits[trial.number] = results
        return statistics.fmean(r.criterion for r in results)

    def _stop_if_out_of_time(self, study: optuna.Study) -> None:
        if self.out_of_time(study):  # candidates too: the budget covers the whole search
            raise optuna.TrialPruned("time budget spent")

    def _stop_if_past(self, *_) -> None:
        """The check of every SGD step and propagation hop: a clock reading against the stop time
        that :meth:`out_of_time` last worked out (reading the study each time would cost more)."""
        if time.monotonic() > self._stop_at:
            raise optuna.TrialPruned("time budget spent")

    def out_of_time(self, study: optuna.Study) -> bool:
        """Past the deadline once :func:`finish` is set aside; never before one trial is complete,
        so a search always has a result."""
        if self.deadline is None or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self._stop_at = math.inf
        else:
            self._stop_at = self.deadline - self._finish_reserve(study)
        return time.monotonic() > self._stop_at

    def _finish_reserve(self, study: optuna.Study) -> float:
        """Seconds :func:`finish` may take: one fit of a kept config per seed, plus its P_1 when
        it is no longer cached (nothing for the trials this process ran: their fits are reused),
        plus a margin of :data:`TAIL_SECONDS`."""
        fit = first = 0.0
        for trial in kept_trials(study, self.keep):
            if trial.number in self.fits:
                continue
            seconds = trial.user_attrs.get("seconds", 0.0)
            fit = max(fit, trial.user_attrs.get("fit_seconds", seconds))
            cost = self.inputs.first_input_cost(TrainConfig.model_validate(trial.user_attrs["config"]))
            first = max(first, seconds if cost is None else cost)
        return 1.25 * (fit * len(self.seeds) + first) + TAIL_SECONDS

    def _fit(self, trial: optuna.Trial, config: TrainConfig, seed: int, prunable: bool) -> FitResult:
        def on_pass(p: PassResult) -> None:
            trial.report(p.criterion, p.pass_index)
            if prunable and trial.should_prune():
                raise optuna.TrialPruned(f"pass {p.pass_index}: criterion {p.criterion:.4f} below the median")

        return self.inputs.trainer(config, seed, self.device).fit(
            on_step=lambda _: self._stop_if_out_of_time(trial.study), on_pass=on_pass, on_sgd=self._stop_if_past)


def mean_metrics(results: list[FitResult], names) -> dict[str, float]:
    """The mean over ``results`` of each metric in ``names`` that every result has (a config
    without post-processing has no ``pre_post_*`` figures; ROC-AUC is missing where undefined)."""
    return {k: statistics.fmean(r.metrics[k] for r in results) for k in names
            if all(k in r.metrics for r in results)}


def optimize(study: optuna.Study, objective: Objective, *, trials: int | None, budget_seconds: float | None,
             callbacks=()) -> None:
    """Run trials until the study holds ``trials`` finished ones (complete or pruned, counting
    earlier runs) or ``budget_seconds`` pass, less the time :func:`finish` takes (so it ends
    inside the budget too); a trial running at the deadline is cut short between SGD steps or
    propagation hops, a candidate of the default too, once one trial is complete.
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
    """The kept configs (best first), how they were found, and the metrics of the per-seed choice
    among them over the trial seeds (test figures computed once, here)."""

    study: str
    best_trial: int
    candidate: str
    kept: dict[str, TrainConfig]
    chosen: list[str]
    criterion: float
    trials: dict[str, int]
    metrics: dict[str, float]

    @property
    def config(self) -> TrainConfig:
        """The best config on validation."""
        return next(iter(self.kept.values()))

    def to_train(self, split_seed: int = 0) -> TrainConfig | Portfolio:
        """What a run trains: the one kept config, or the kept configs as a portfolio."""
        if len(self.kept) == 1:
            return self.config
        return Portfolio(task=self.config.task, split_seed=split_seed, candidates=self.kept)

    def run_config(self, dataset: str, split_seed: int) -> dict:
        """What ``best_config.yaml`` holds: a run config, or a portfolio when several are kept."""
        chosen = self.to_train(split_seed)
        if isinstance(chosen, Portfolio):
            return chosen.model_dump(mode="json")
        return {"dataset": dataset, "split_seed": split_seed, "train": chosen.model_dump(mode="json")}

    def to_dict(self) -> dict:
        return {"study": self.study, "best_trial": self.best_trial, "candidate": self.candidate,
                "criterion": self.criterion, "trials": self.trials, "metrics": self.metrics,
                "chosen": self.chosen, "architecture": self.config.describe(),
                "kept": {name: c.describe() for name, c in self.kept.items()},
                "config": self.config.model_dump(mode="json")}


def kept_trials(study: optuna.Study, keep: int = KEEP) -> list[FrozenTrial]:
    """The ``keep`` complete trials with the highest criterion, one per distinct config, best first
    (ties: the earlier trial)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    kept, seen = [], set()
    for trial in sorted(complete, key=lambda t: t.value, reverse=True):
        key = json.dumps(trial.user_attrs["config"], sort_keys=True)
        if key not in seen and len(kept) < keep:
            seen.add(key)
            kept.append(trial)
    return kept


def _label(trial: FrozenTrial) -> str:
    return trial.user_attrs.get("candidate") or f"trial-{trial.number}"


def finish(study: optuna.Study, inputs: Inputs, *, seeds: list[int], device, keep: int = KEEP,
           fits: dict[int, list[FitResult]] | None = None) -> TuneResult:
    """Per trial seed, the kept config with the best validation criterion for that seed (the
    trials' own scores decide) and every metric of its fit, reported once: the trial's own fit
    when ``fits`` (:attr:`Objective.fits`) holds it, else a retraining with the same seed."""
    fits = fits or {}
    kept = kept_trials(study, keep)
    if not kept:
        raise RuntimeError(f"study {study.study_name!r} has no complete trial yet: give it more trials or time")
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    configs = {_label(t): TrainConfig.model_validate(t.user_attrs["config"]) for t in kept}
    results, chosen = [], []
    for i, seed in enumerate(seeds):
        # trials of studies from before per-seed criteria were kept: their mean stands for each seed
        trial = max(kept, key=lambda t: t.user_attrs.get("criteria", [t.value] * len(seeds))[i])
        chosen.append(_label(trial))
        own = fits.get(trial.number)
        results.append(own[i] if own else inputs.trainer(configs[chosen[-1]], seed, device).fit())
    best = kept[0]
    return TuneResult(study.study_name, best.number, best.user_attrs.get("candidate", ""), configs, chosen,
                      best.value, counts, mean_metrics(results, results[0].metrics))


def candidates_of(portfolio_file: str | Path | None) -> Portfolio | None:
    config = load_config(portfolio_file) if portfolio_file else None
    if config is not None and not isinstance(config, Portfolio):
        raise ValueError(f"{portfolio_file}: 'candidates' must name a portfolio file (with 'candidates:')")
    return config


def tune(inputs: Inputs, space: SearchSpace, *, storage_url: str, name: str, trials: int | None = None,
         budget_seconds: float | None = None, seeds: list[int] = (0,), device="cpu", keep: int = KEEP,
         callbacks=()) -> TuneResult:
    """Open (or resume) the study, run the search in this process, and finish it; the budget
    counts from the call (opening the study takes its share)."""
    if trials is None and budget_seconds is None:
        raise ValueError("give a number of trials or a time budget")
    started = time.monotonic()
    study = open_study(name, storage_url, seeds[0])
    left = None if budget_seconds is None else budget_seconds - (time.monotonic() - started)
    objective = run_trials(study, inputs, space, trials=trials, budget_seconds=left, seeds=seeds, device=device,
                           keep=keep, callbacks=callbacks)
    return finish(study, inputs, seeds=list(seeds), device=device, keep=keep, fits=objective.fits)


def run_trials(study: optuna.Study, inputs: Inputs, space: SearchSpace, *, trials: int | None,
               budget_seconds: float | None, seeds, device, keep: int = KEEP, callbacks=()) -> Objective:
    """Trials of ``space`` on ``study`` until its trial count or budget is reached: the search of
    :func:`tune` and of each worker of the ``dgnn tune`` flow (which finish once, after all)."""
    objective = Objective(inputs, space, seeds=list(seeds), device=device, keep=keep)
    optimize(study, objective, trials=trials, budget_seconds=budget_seconds, callbacks=callbacks)
    return objective
