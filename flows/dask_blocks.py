"""Row blocks of a propagation as Dask futures on the pipeline run's cluster (prefect-dask's runner).

A pipeline run with a Dask task runner (``dgnn run --dask-workers N | --dask-address A``, the
set-up of ``dgnn sweep``: :func:`flows.sweep.on_dask`) exports its scheduler's address as
:data:`ADDRESS_ENV` while it runs (:func:`cluster_exported`); the propagate stage's blocks and an
out-of-core run's re-propagations then go to that cluster (:func:`block_runner`), and ``dvc
repro`` started by the run reaches it too (``dgnn propagate`` reads the variable). Every block reads
its inputs from files and writes its rows into the output file, so the workers must see the data
and run folders under the same paths (a local cluster, or a shared file system).
"""

from __future__ import annotations

import contextlib
import os
from functools import partial

from dgnn.data.stages import BlockKernel, MapBlocks, run_blocks

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
    import distributed

    with distributed.Client(address, set_as_default=False) as client:
        futures = client.map(_block, [kernel] * len(blocks), [start for start, _ in blocks],
                             [end for _, end in blocks], pure=False)
        workers = set(client.gather(futures))
    print(f"{len(blocks)} row block(s) ran on {len(workers)} Dask worker process(es)")


def block_runner() -> MapBlocks:
    """:func:`on_cluster` on the exported cluster when there is one, else the blocks in this process."""
    address = os.environ.get(ADDRESS_ENV)
    return partial(on_cluster, address) if address else run_blocks
