"""What training returns: a module step (:class:`StepResult`, and :class:`SgdProgress` after each
of its SGD steps), a forward pass (:class:`PassResult`) and a whole fit (:class:`FitResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dgnn.schedule import Step


@dataclass
class StepResult:
    step: Step
    losses: list[float]
    val_metric: float | None
    seconds: float
    steps_run: int
    loss_times: list[float] = field(default_factory=list)  # time.time() at each loss, for trackers


@dataclass(frozen=True)
class SgdProgress:
    """One SGD step of a module step, as ``run_step``'s ``on_sgd`` hook sees it (after the update)."""

    step: Step
    sgd_step: int  # 1-based
    total: int  # the configured SGD steps; module early stopping may end the step sooner
    loss: float  # the loss this SGD step minimised
    loss_time: float  # time.time() at that loss
    val_metric: float | None  # the last validation accuracy computed in this step, if any


@dataclass
class PassResult:
    """Scores after forward pass ``pass_index``; ``criterion`` is what selection maximises."""

    pass_index: int
    criterion: float
    metrics: dict[str, float]
    is_best: bool = False


@dataclass
class FitResult:
    task: str
    best_pass: int
    metrics: dict[str, float]
    passes: list[PassResult] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    train_seconds: float = 0.0
    post_criterion: float | None = None  # after the config's post-processing, when it has one

    @property
    def criterion(self) -> float:
        """What selection maximised, at the selected pass (validation accuracy or modularity),
        post-processed where the config post-processes."""
        if self.post_criterion is not None:
            return self.post_criterion
        return next(p.criterion for p in self.passes if p.pass_index == self.best_pass)

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "best_pass": self.best_pass,
            "metrics": self.metrics,
            "passes": [asdict(p) for p in self.passes],
            "train_seconds": self.train_seconds,
        }
