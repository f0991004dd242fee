"""Dask: a propagation's row blocks as futures on a scheduler, and prefect-dask's task runner on a
scheduler or a local cluster whose workers report to a given Prefect API.

Every block reads its inputs from files and writes its rows into the output file, so the workers
must see the data and run folders under the same paths (a local cluster, or a shared file system).
"""

from __future__ import annotations

import gc
import os
from functools import partial

import distributed

from dgnn.data.stages import BlockKernel, MapBlocks, run_blocks


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


def block_runner(address: str | None) -> MapBlocks:
    """:func:`on_cluster` on the scheduler at ``address``, else (None) the blocks in this process."""
    return partial(on_cluster, address) if address else run_blocks


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


def dask_task_runner(address: str | None, workers: int, api_url: str):
    """prefect-dask's task runner on the scheduler at ``address``, else on a local cluster of
    ``workers`` single-threaded worker processes (no dashboard; they exit promptly:
    :class:`FreezeAtExit`) whose environment names the Prefect API at ``api_url`` and labels their
    task lines. A remote scheduler's workers take both from their own environment."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    env = {"PREFECT_API_URL": api_url, TASK_FORMAT_ENV: WORKER_TASK_FORMAT}
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "plugins": (FreezeAtExit(),), "env": env})
