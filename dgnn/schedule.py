"""The FT/BT schedule as a list of steps (what each step returns: :mod:`dgnn.results`)."""

from __future__ import annotations

from dataclasses import dataclass
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
