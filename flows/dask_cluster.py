"""How the flows use Dask: :func:`on_dask` gives a flow prefect-dask's runner (a local cluster or
a scheduler's address, :mod:`adapters.dask.cluster`), its workers reporting to this process's
Prefect API (``dgnn sweep``, ``tune``, ``propagate`` and ``run`` with ``--dask-*``). In a pipeline
run on it, the propagate stage's blocks and an out-of-core run's re-propagations go to the flow's
cluster (:func:`flow_dask_address`), and ``dvc repro`` started by the run reaches it too: its
environment names the scheduler as :data:`ADDRESS_ENV`, which ``dgnn propagate`` reads.
"""

from __future__ import annotations

import contextlib

from adapters.dask.cluster import dask_task_runner
from adapters.prefect.server import shared_api
from adapters.process import log_levels

ADDRESS_ENV = "DGNN_DASK_ADDRESS"  # read by `dgnn propagate` (the DVC stage) as its --dask-address


def flow_dask_address() -> str | None:
    """The scheduler of the running flow's Dask task runner (its client starts a local cluster on
    first use), else None: read from Prefect's flow-run context, in the flow or one of its tasks."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or type(context.task_runner).__name__ != "DaskTaskRunner":
        return None
    return context.task_runner.client.scheduler.address


@contextlib.contextmanager
def on_dask(address: str | None, workers: int):
    """The task runner of :func:`~adapters.dask.cluster.dask_task_runner`, reporting to this
    process's Prefect API (:func:`~adapters.prefect.server.shared_api`); with a local cluster,
    dask.distributed (its scheduler and nannies live in this process) logs warnings and errors only."""
    with shared_api() as api_url, contextlib.nullcontext() if address else log_levels.warnings_only("distributed"):
        yield dask_task_runner(address, workers, api_url)
