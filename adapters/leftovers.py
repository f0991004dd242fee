"""What a killed ``dgnn run`` / ``dgnn tune`` (``kill -9``, the OOM killer) leaves behind, closed or
removed when the next one starts: its Prefect flow and task runs, still RUNNING, and its
``dgnn-<kind>-<pid>-*`` temporary folders.

Its MLflow runs are closed by :func:`adapters.tracking.reap_stale_runs`, and its Prefect server ends
with it (:mod:`adapters.server`). Like those MLflow runs, its Prefect runs name their process in the
tags ``dgnn.host:<host>`` and ``dgnn.pid:<pid>`` (:func:`owned_runs`).
"""

from __future__ import annotations

import contextlib
import os
import socket

from dgnn.processes import pid_alive, sweep_owned_temp_dirs

HOST_TAG, PID_TAG = "dgnn.host", "dgnn.pid"


@contextlib.contextmanager
def owned_runs():
    """Flow and task runs created inside carry this process's host and pid as tags from their start."""
    from prefect import tags

    with tags(f"{HOST_TAG}:{socket.gethostname()}", f"{PID_TAG}:{os.getpid()}"):
        yield


def clean_up() -> dict[str, list]:
    """Close the Prefect runs and remove the temporary folders of processes that were killed."""
    return {"crashed_runs": crash_stale_runs(), "removed_folders": sweep_owned_temp_dirs()}


def crash_stale_runs() -> list[str]:
    """Set CRASHED the flow and task runs still RUNNING whose process on this host is gone; their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    host = [f"{HOST_TAG}:{socket.gethostname()}"]
    running = [StateType.RUNNING]
    crashed = []
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(flow_run_filter=filters.FlowRunFilter(
            state=filters.FlowRunFilterState(type=filters.FlowRunFilterStateType(any_=running)),
            tags=filters.FlowRunFilterTags(all_=host)))
        task_runs = client.read_task_runs(task_run_filter=filters.TaskRunFilter(
            state=filters.TaskRunFilterState(type=filters.TaskRunFilterStateType(any_=running)),
            tags=filters.TaskRunFilterTags(all_=host)))
        for runs, set_state in ((flow_runs, client.set_flow_run_state), (task_runs, client.set_task_run_state)):
            for run in runs:
                pid = _owner_pid(run.tags)
                if pid is not None and pid != os.getpid() and not pid_alive(pid):
                    set_state(run.id, Crashed(message=f"process {pid} ended without closing the run"), force=True)
                    crashed.append(str(run.id))
    return crashed


def _owner_pid(tags: list[str]) -> int | None:
    values = [tag.removeprefix(f"{PID_TAG}:") for tag in tags if tag.startswith(f"{PID_TAG}:")]
    return int(values[0]) if values and values[0].isdigit() else None
