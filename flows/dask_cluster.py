"""How the flows use Dask: the task runner a flow runs on, and a propagation's row blocks as
futures on its cluster.

:func:`on_dask` gives a flow prefect-dask's runner (a local cluster or a scheduler's address), its
workers reporting to this process's Prefect API (``dgnn sweep``, ``tune``, ``propagate`` and
``run`` with ``--dask-*``). A pipeline run on it exports the scheduler's address as
:data:`ADDRESS_ENV` while it runs (:func:`cluster_exported`); the propagate stage's blocks and an
out-of-core run's re-propagations then go to that cluster (:func:`block_runner`), and ``dvc
repro`` started by the run reaches it too (``dgnn propagate`` reads the variable). Every block
reads its inputs from files and writes its rows into the output file, so the workers must see the
data and run folders under the same paths (a local cluster, or a shared file system).
"""

from __future__ import annotations

import contextlib
import gc
import os
from functools import partial

import distributed

from dgnn.data.stages import BlockKernel, MapBlocks, run_blocks
from adapters import log_levels

ADDRESS_ENV = "DGNN_DASK_ADDRESS"  # read by `dgnn propagate` (the DVC stage) as its --dask-address


@contextlib.contextmanager
def cluster_exported():
    """While the flow body runs: :data:`ADDRESS_ENV` names the scheduler of the flow's Dask task
    runner (unset without one)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    previous = os.environ.pop(ADDRESS_ENV, None)
    if context is not None and type(context.task_runner).__name__ == "DaskTaskRunner":
        # the runner's client starts its (local) cluster on first use
        os.environ[ADDRESS_ENV] = context.task_runner.client.scheduler.address
    try:
        yield
    finally:
        os.environ.pop(ADDRESS_ENV, None)
        if previous is not None:
            os.environ[ADDRESS_ENV] = previous


def _block(kernel: BlockKernel, start: int, end: int) -> int:
    kernel(start, end)
    return os.getpid()


def on_cluster(address: str, kernel: BlockKernel, blocks: list[tuple[int, int]]) -> None:
    """``kernel(start, end)`` for every block as futures on the scheduler at ``address``; returns
    when all have run, raising the first failure, and prints how many worker processes ran them."""
    with distributed.Client(address, set_as_default=False) as client:
        futures = client.map(_block, [kernel] * len(blocks), [start for start, _ in blocks],
                             [end for _, end in blocks], pure=False)
        workers = set(client.gather(futures))
    print(f"{len(blocks)} row block(s) ran on {len(workers)} Dask worker process(es)")


def block_runner() -> MapBlocks:
    """:func:`on_cluster` on the exported cluster when there is one, else the blocks in this process."""
    address = os.environ.get(ADDRESS_ENV)
    return partial(on_cluster, address) if address else run_blocks


@contextlib.contextmanager
def shared_prefect_api():
    """Make Dask workers report to this process's Prefect API: the configured server, or the
    ephemeral one (started here and exported as PREFECT_API_URL, which the workers inherit)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    previous = os.environ.get("PREFECT_API_URL")
    if url:
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            _restore("PREFECT_API_URL", previous)
        return
    from adapters.server import ephemeral_server

    server = ephemeral_server()
    server.start(timeout=int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")))
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        _restore("PREFECT_API_URL", previous)


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


# Task lines of a worker, with the flow run (the pipeline run: dataset, config, seed, sweep) first.
WORKER_TASK_FORMAT = "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(flow_run_name)s | Task run %(task_run_name)r - %(message)s"
TASK_FORMAT_ENV = "PREFECT_LOGGING_FORMATTERS_STANDARD_TASK_RUN_FMT"  # read by each worker's Prefect


class FreezeAtExit(distributed.WorkerPlugin):
    """Takes a closing worker's objects out of the garbage collector: the final collection of a
    process that imported torch, MLflow and Prefect takes seconds, for nothing, and on a busy
    machine outlasts the 4 s after which dask.distributed kills the worker ("Worker process still
    alive ... killing"); frozen, the worker exits in well under a second."""

    def teardown(self, worker) -> None:  # noqa: ARG002
        gc.freeze()


@contextlib.contextmanager
def local_cluster_output():
    """While a local cluster runs: its workers label their task lines, and dask.distributed (the
    scheduler and nannies live in this process) logs warnings and errors only."""
    previous = os.environ.get(TASK_FORMAT_ENV)
    os.environ[TASK_FORMAT_ENV] = WORKER_TASK_FORMAT
    try:
        with log_levels.warnings_only("distributed"):
            yield
    finally:
        _restore(TASK_FORMAT_ENV, previous)


def dask_task_runner(address: str | None, workers: int):
    """prefect-dask's task runner on the scheduler at ``address``, else on a local cluster of
    ``workers`` single-threaded worker processes (no dashboard; they exit promptly:
    :class:`FreezeAtExit`)."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "plugins": (FreezeAtExit(),)})


@contextlib.contextmanager
def on_dask(address: str | None, workers: int):
    """The task runner of :func:`dask_task_runner`, with the workers reporting to this process's
    Prefect API (:func:`shared_prefect_api`) and, on a local cluster, its output tidied
    (:func:`local_cluster_output`)."""
    with shared_prefect_api(), contextlib.nullcontext() if address else local_cluster_output():
        yield dask_task_runner(address, workers)
