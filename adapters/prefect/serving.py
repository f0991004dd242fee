"""``dgnn serve``: the pipeline as the deployment of a Prefect runner that stops cleanly.

Prefect's ``flow.serve`` exits 0 on SIGTERM (its handler drops the coroutine that would stop the
runner: "coroutine 'Runner.astop' was never awaited"), leaves a run it was submitting PENDING and
the next scheduled runs (90 or so) in the database, and its flow-run processes outlive a
``kill -9`` of the serve, finishing against a dead API. Here:

* SIGTERM and SIGINT first stop the flow-run processes and wait for their end (with SIGTERM: each closes its MLflow runs
  KILLED and its Prefect run CRASHED through the server, still up), then the runner, on its event
  loop; afterwards the deployment's SCHEDULED runs are deleted and a run left PENDING or RUNNING
  is set CRASHED; the signal leaves as :class:`adapters.process.interrupts.Terminated` or
  ``KeyboardInterrupt``.
* A flow-run process ends itself once the serve process is gone (:mod:`adapters.process.lifeline`); the
  next serve (or run) closes what it left: the deployment's tags name the serve process, and its
  flow runs carry them (:func:`adapters.prefect.leftovers.clean_up`).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

from adapters.prefect import leftovers, links as prefect_links
from adapters.process import interrupts, lifeline

FLOW_RUN_GRACE_S = 120  # to close its MLflow and Prefect runs on a loaded machine; then astop kills it


def serve(flow, *, name: str, parameters: dict, cron: str | None, interval: float | None, api_url: str,
          announce: bool) -> None:
    """Serve ``flow`` as deployment ``name`` of the Prefect server at ``api_url`` until a signal stops
    it (raised as described above); ``announce``: say so, with a command that starts a run now."""
    from prefect.deployments.runner import EntrypointType

    runner = _runner_class()(name=name, limit=1)
    owner_tags = [f"{leftovers.HOST_TAG}:{socket.gethostname()}", f"{leftovers.PID_TAG}:{os.getpid()}"]
    runner.add_flow(flow.with_options(on_running=[_end_with_serve]), name=name, cron=cron, interval=interval,
                    parameters=parameters, tags=owner_tags, entrypoint_type=EntrypointType.MODULE_PATH)
    leftovers.clean_up()  # after the deployment names this process: runs scheduled until then name the last one
    if announce:
        print(f"serving deployment '{flow.name}/{name}' ({f'cron {cron}' if cron else f'every {interval:g}s'}); "
              f"Ctrl-C or SIGTERM stops it\na run now, from any shell: {trigger_command(flow.name, name, api_url)}",
              file=sys.stderr, flush=True)
    previous = signal.signal(signal.SIGINT, runner.handle_sigterm)  # Ctrl-C stops it the same way
    try:
        asyncio.run(runner.start())
    finally:
        signal.signal(signal.SIGINT, previous)
        leftovers.close_runs(lambda pid: pid == os.getpid(),
                             lambda pid: f"dgnn serve (pid {pid}) stopped before the run ended")
    if runner.stopped_by is not None:
        _raise_for(runner.stopped_by)


def trigger_command(flow_name: str, name: str, api_url: str) -> str:
    """The shell command that starts a run of the deployment: it names the server (a shell without
    ``PREFECT_API_URL`` would start an ephemeral one on the same database) and this Prefect."""
    prefect = Path(sys.executable).with_name("prefect")
    return (f"PREFECT_API_URL={shlex.quote(api_url)} {shlex.quote(str(prefect)) if prefect.exists() else 'prefect'} "
            f"deployment run {shlex.quote(f'{flow_name}/{name}')}")


def _raise_for(signum: int):
    raise interrupts.Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt


@functools.cache
def _runner_class():
    from prefect.runner import Runner

    class StoppingRunner(Runner):
        stopped_by: int | None = None

        def handle_sigterm(self, signum, frame):  # Runner.start installs it for SIGTERM
            """Stop the runner on its event loop (this runs on that loop's thread, between steps);
            before it has started, nothing runs yet: leave at once."""
            if not self.started:
                _raise_for(signum)
            if self.stopped_by is None:
                self.stopped_by = signum
                flow_runs = multiprocessing.active_children()  # each flow run, started by the runner
                for process in flow_runs:
                    process.terminate()
                asyncio.get_running_loop().create_task(self._stop_after(flow_runs))

        async def _stop_after(self, flow_runs: list) -> None:
            """``astop`` SIGTERMs the flow runs again: wait until they have closed their runs first,
            or the second signal lands in their handling of the first (a traceback in the log)."""
            await asyncio.gather(*(asyncio.to_thread(process.join, FLOW_RUN_GRACE_S) for process in flow_runs))
            await self.astop()

    return StoppingRunner


def _end_with_serve(flow, flow_run, state) -> None:
    """Flow hook, in the flow-run process: end the run once the serve process is gone."""

    def report(problem: str) -> int:
        print(f"error: flow run {prefect_links.flow_run_name(flow_run)} failed: {problem}: finished steps are kept "
              "and its MLflow runs closed as FAILED; the next dgnn serve or run closes its Prefect run",
              file=sys.stderr, flush=True)
        return 1

    lifeline.watch_until_exit(lifeline.parent_ended("dgnn serve"), report)
