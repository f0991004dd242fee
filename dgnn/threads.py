"""How many threads torch uses for training: chosen from the graph size unless the user says.

torch starts one OpenMP thread per core, and those threads spin at every barrier: beside any
other busy process on a 2-core machine a Cora run took 10-30x longer than with one thread.
Every training entry point (``dgnn train``, the pipeline flow behind ``dgnn run`` / ``serve`` /
``sweep``) calls :func:`apply_threads` once the graph is loaded.
"""

from __future__ import annotations

import os

import torch

ENV = "DGNN_THREADS"
# A module step's largest operation is Â^p H (n x width, sparse CSR). Measured on 2 cores beside
# other jobs, a second thread lost at every size up to 300k nodes (3k: 0.5 vs 20 ms, 100k: 57 vs
# 99 ms), so a thread is added per 100k nodes only: every shipped dataset trains on one.
NODES_PER_THREAD = 100_000


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


def _env_threads(name: str) -> int | None:
    """A positive count from ``$name`` (None when unset); DGNN_THREADS must be valid."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    # OMP_NUM_THREADS may list one count per nesting level ("4,2"): the first is the outer one.
    first = text.split(",")[0].strip()
    if first.isdigit() and int(first) > 0:
        return int(first)
    if name == ENV:
        raise ValueError(f"{ENV}={text!r} is not a positive integer: unset it or set e.g. {ENV}=1")
    return None  # torch ignores a malformed OMP_NUM_THREADS too


def choose_threads(num_nodes: int, requested: int | None = None, processes: int = 1) -> int:
    """The intra-op thread count for training on a graph of ``num_nodes`` nodes.

    An explicit choice wins, in this order: ``requested`` (``--threads``), ``$DGNN_THREADS``,
    ``$OMP_NUM_THREADS``. Otherwise one thread per :data:`NODES_PER_THREAD` nodes (at least 1),
    at most this process's share of the cores: ``available_cores() // processes`` when
    ``processes`` trainings run side by side (a sweep's local Dask workers).

    No core is held back for a co-located Prefect or MLflow server: both sleep while a module
    trains (they answer a few requests between tasks), so on a big graph that core would idle
    for most of the run. Load from other jobs cannot be seen reliably from here (the load
    average lags and counts this process); on a shared machine pass ``--threads 1``.
    """
    if requested is not None and requested < 1:
        raise ValueError(f"--threads {requested}: give a positive thread count, e.g. --threads 1")
    explicit = requested or _env_threads(ENV) or _env_threads("OMP_NUM_THREADS")
    if explicit:
        return explicit
    share = max(1, available_cores() // max(1, processes))
    return max(1, min(share, num_nodes // NODES_PER_THREAD))


def apply_threads(num_nodes: int, requested: int | None = None, processes: int = 1) -> int:
    """Set torch's intra-op thread count to :func:`choose_threads`'s choice and return it."""
    threads = choose_threads(num_nodes, requested, processes)
    torch.set_num_threads(threads)
    return threads
