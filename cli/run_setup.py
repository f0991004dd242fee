"""What every pipeline command (``run``, ``serve``, ``sweep``, ``tune``, ``ui``) does before its
work: the process's environment and stores, then the Prefect API the work runs against."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from cli import errors


def apply_defaults() -> dict[str, str]:
    """Set the project's environment defaults that are unset (:mod:`adapters.process.settings`), before
    Prefect or MLflow is imported (both read their settings then); returns the ones set. The one
    place, with the tests' ``conftest``, where the process environment is written at start."""
    from adapters.process.settings import missing_defaults

    applied = missing_defaults()
    os.environ.update(applied)
    return applied


def data_dir_of(args: argparse.Namespace) -> str | None:
    """``--data-dir`` as the flows' ``data_dir`` parameter: absolute (a served deployment's runs and
    Dask workers start elsewhere), or None for the flows' default."""
    return str(Path(args.data_dir).resolve()) if getattr(args, "data_dir", None) else None


def prepare(args: argparse.Namespace) -> int:
    """Environment shared by the pipeline commands (before Prefect is imported), and the stores
    (:mod:`adapters.process.stores`): 0, or 1 after one line when a store cannot be used."""
    if getattr(args, "quiet", False):
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import warnings

    warnings.filterwarnings("ignore", module="mlflow")
    from adapters.process import interrupts, stores  # here, not at import: `dgnn train` loads no adapter

    interrupts.raise_on_sigterm()  # leaves like Ctrl-C: open MLflow runs are closed on the way out
    return stores_error(args.command, stores.prepare)


def stores_error(what: str, action) -> int:
    """0 after ``action()``, else the status of its error (one line)."""
    from adapters.process.stores import StoreError

    try:
        action()
    except (StoreError, ValueError) as err:
        return errors.status_of(what, err)
    return 0


def with_server(work, what: str = "pipeline", kept: str = "finished steps are kept"):
    """``work()`` against the configured Prefect API, or an ephemeral server started on the side
    (the run's imports overlap its boot); returns work's result plus the server's start figures.

    First the Prefect runs and temporary folders of killed commands are closed and removed, and
    the runs ``work()`` creates name this process (:mod:`adapters.prefect.leftovers`). Should the ephemeral
    server stop meanwhile, the command ends within a second: one line saying so and what was
    ``kept``, status 1 (:mod:`adapters.process.lifeline`)."""
    wait_for_server = None
    if not os.environ.get("PREFECT_API_URL"):
        from adapters.prefect.server import start_ephemeral

        wait_for_server = start_ephemeral()
    from adapters.prefect import leftovers
    from adapters.process import lifeline
    from flows.pipeline import prepare_process

    prepare_process()  # while the server boots
    server, process = wait_for_server() if wait_for_server else (None, None)
    leftovers.clean_up()

    def report(problem: str) -> int:
        return errors.failed(what, RuntimeError(f"{problem}: {kept} and the MLflow runs closed as FAILED; rerun "
                                                "the same command to resume (it starts a new server)"))

    watch = lifeline.watching(lifeline.server_ended(process), report) if process else contextlib.nullcontext()
    with leftovers.owned_runs(), watch:
        return work(), server
