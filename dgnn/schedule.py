"""The FT/BT schedule as a list of steps, and what training a step, a pass and a whole fit returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Direction = Literal["forward", "backward"]


@dataclass(frozen=True)
class Step:
    """Train module ``module`` (0-based) in pass ``pass_index`` of ``direction``, in self-training
    stage ``stage`` (0: the only stage without self-training)."""

    direction: Direction
    pass_index: int
    module: int
    stage: int = 0

    @property
    def name(self) -> str:
        prefix = f"ST{self.stage}-" if self.stage else ""
        return f"{prefix}{'FT' if self.direction == 'forward' else 'BT'}{self.pass_index}-m{self.module + 1}"


def schedule(num_modules: int, bp_count: int, stages: int = 1) -> list[Step]:
    """Per stage: FT_0 (1..L), then bp_count times BT_r (L..1) followed by FT_r (1..L)."""
    steps = []
    for stage in range(stages):
        steps += [Step("forward", 0, m, stage) for m in range(num_modules)]
        for r in range(1, bp_count + 1):
            steps += [Step("backward", r, m, stage) for m in reversed(range(num_modules))]
            steps += [Step("forward", r, m, stage) for m in range(num_modules)]
    return steps


def next_stage(plan: list[Step], index: int) -> int:
    """The index of the first step after ``index`` in a later stage (``len(plan)`` when none)."""
    stage = plan[index].stage
    return next((i for i in range(index + 1, len(plan)) if plan[i].stage != stage), len(plan))


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
