"""One line per finished trial of a search, so a long ``dgnn tune`` is never silent:

    trial 7 complete: criterion 0.8120 (best 0.8240, trial 3) in 4.2s; 8/20 trials, 61s of 120s

Without it the search prints nothing between its data tasks and its summary, and a user cannot
tell a slow trial from a hung one, nor how much of the budget is left.
"""

from __future__ import annotations

import time
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState


class TrialLines:
    """Optuna callback: ``log`` one line per finished trial.

    Args:
        log: where the line goes (e.g. the task's Prefect run logger's ``info``).
        trials: the study's trial target (None: no target).
        budget_seconds: the search's time budget, counted from this object's creation (None: none).
    """

    def __init__(self, log: Callable[[str], None], trials: int | None = None, budget_seconds: float | None = None):
        self.log, self.trials, self.budget = log, trials, budget_seconds
        self.started = time.monotonic()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.log(trial_line(study, trial, self.trials, self.budget, time.monotonic() - self.started))


def _best(study: optuna.Study) -> str:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "no trial complete yet"
    best = max(complete, key=lambda t: t.value)
    return f"best {best.value:.4f}, trial {best.number}"


def trial_line(study: optuna.Study, trial: FrozenTrial, trials: int | None, budget: float | None,
               elapsed: float) -> str:
    """The line of ``trial``: its state and criterion (a pruned trial's last reported pass), the best
    so far, its seconds, and how far the search is towards its trial target and time budget."""
    if trial.state == TrialState.COMPLETE:
        score = f"criterion {trial.value:.4f}"
    elif trial.intermediate_values:
        step = max(trial.intermediate_values)
        score = f"criterion {trial.intermediate_values[step]:.4f} at pass {step}"
    else:
        score = "no criterion"
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    count = f"{done}/{trials} trials" if trials is not None else f"{done} trials"
    spent = f", {elapsed:.0f}s of {budget:.0f}s" if budget is not None else f", {elapsed:.0f}s"
    return (f"trial {trial.number} {trial.state.name.lower()}: {score} ({_best(study)}) "
            f"in {seconds:.1f}s; {count}{spent}")
