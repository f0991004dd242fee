"""The propagate stage with its row blocks as Prefect tasks on Dask (prefect-dask).

:func:`run_propagate` runs them on a local cluster of worker processes or on a running scheduler,
with the set-up of ``dgnn sweep`` (``dgnn propagate ... --dask-workers N | --dask-address``).
:func:`dgnn.data.propagate_stage` writes the files and hands each hop's blocks to
:func:`on_workers`, which submits one task per block (:func:`dgnn.data.stages.hop_block`). A
block reads the adjacency and the previous hop from the data folder and writes its rows into the
next hop's file, so the workers of a remote cluster must see the data folder under the same path
(a shared file system). Each row is summed in a fixed order, so the files are byte-identical to
the single-process stage's, and so are the content hash and the DVC hash.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from dgnn.data import propagate_stage
from dgnn.data.stages import BlockKernel
from flows.dask_cluster import on_dask


@task(name="propagate-rows", task_run_name="rows-{start}-{end}", cache_policy=NO_CACHE, persist_result=False)
def rows_task(kernel: BlockKernel, start: int, end: int) -> int:
    """Rows ``start:end`` of the next power; returns the worker's process id."""
    kernel(start, end)
    return os.getpid()


def on_workers(kernel: BlockKernel, blocks: list[tuple[int, int]]) -> None:
    """One task per block on the flow's task runner; returns when all have ended, raising the
    first failure only then (the stage removes its temporary folder on an error), and logs how
    many worker processes ran them."""
    futures = [rows_task.submit(kernel, start, end) for start, end in blocks]
    wait(futures)
    workers = {future.result() for future in futures}
    print(f"{len(blocks)} row blocks ran on {len(workers)} worker process(es)")


@flow(name="dgnn-propagate", log_prints=True)
def propagate_flow(dataset: str, orders: list[int], feature_norm: str = "none", block_rows: int | None = None,
                   data_dir: str | None = None) -> str:
    """:func:`dgnn.data.propagate_stage` with its blocks on the flow's task runner; the folder."""
    return str(propagate_stage(dataset, orders, data_dir, block_rows, feature_norm, map_blocks=on_workers,
                               on_hop=print))


def run_propagate(dataset: str, orders: list[int], *, feature_norm: str = "none", block_rows: int | None = None,
                  data_dir: str | None = None, address: str | None = None, workers: int = 2) -> Path:
    """:func:`propagate_flow` on Dask (the scheduler at ``address``, else a local cluster of
    ``workers``); returns the ``propagated/`` folder."""
    with on_dask(address, workers) as runner:
        return Path(propagate_flow.with_options(task_runner=runner)(
            dataset=dataset, orders=orders, feature_norm=feature_norm, block_rows=block_rows, data_dir=data_dir))
