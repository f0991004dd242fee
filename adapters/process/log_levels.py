"""A library logger held at WARNING or above for a block: its INFO lines there are noise in a
command's output (dask.distributed's cluster chatter, MLflow's note on each saved model)."""

from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def warnings_only(name: str):
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(saved)
