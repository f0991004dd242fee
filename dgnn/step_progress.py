"""What a module step reports while it trains: a line at its first SGD step and then at most every
``EVERY_SECONDS`` (to the task's Prefect run logger, which also prints on stderr), and at the same
moments the losses so far, to be streamed to the step's MLflow child run.

Without it a long module step is silent until it ends; a line per SGD step would flood the log.
"""

from __future__ import annotations

import time
from typing import Callable

from dgnn.results import SgdProgress

EVERY_SECONDS = 5.0

# stream(first SGD step, losses, their time.time() values)
Stream = Callable[[int, list[float], list[float]], None]


class StepProgress:
    """The ``on_sgd`` hook of one module step.

    Args:
        log: where the lines go (e.g. the task's Prefect run logger's ``info``).
        stream: takes the losses not streamed yet (None: they are only kept for ``streamed``).
        every: seconds between two lines after the first.
    """

    def __init__(self, log: Callable[[str], None], stream: Stream | None = None, every: float = EVERY_SECONDS):
        self.log, self.stream, self.every = log, stream, every
        self.started = time.monotonic()
        self.last: float | None = None
        self.losses: list[float] = []
        self.times: list[float] = []
        self.streamed = 0  # the first ``streamed`` SGD steps' losses went to ``stream``

    def __call__(self, progress: SgdProgress) -> None:
        self.losses.append(progress.loss)
        self.times.append(progress.loss_time)
        now = time.monotonic()
        if self.last is not None and now - self.last < self.every:
            return
        self.last = now
        self.log(progress_line(progress, now - self.started))
        if self.stream is not None:
            self.stream(self.streamed + 1, self.losses, self.times)
            self.streamed += len(self.losses)
            self.losses, self.times = [], []


def _val(value: float | None) -> str:
    return "" if value is None else f", val_acc {value:.4f}"


def progress_line(progress: SgdProgress, seconds: float) -> str:
    return (f"SGD step {progress.sgd_step}/{progress.total}: loss {progress.loss:.4f}"
            f"{_val(progress.val_metric)} ({seconds:.1f}s)")


def done_line(steps_run: int, loss: float, val_metric: float | None, seconds: float) -> str:
    """A module step's last line: SGD steps run, final loss, validation accuracy, time (the one
    format of ``dgnn train``'s progress and of the pipeline's module tasks)."""
    return f"done: {steps_run} SGD steps, loss {loss:.4f}{_val(val_metric)} ({seconds:.1f}s)"
