"""What a killed ``dgnn run`` / ``dgnn tune`` / ``dgnn serve`` (``kill -9``, the OOM killer) leaves
behind, closed or removed when the next one starts: its Prefect flow and task runs, still RUNNING
or PENDING, a serve's SCHEDULED runs, and its ``dgnn-<kind>-<pid>-*`` temporary folders.

Its MLflow runs are closed by :func:`adapters.mlflow.tracking.reap_stale_runs`, and its Prefect server ends
with it (:mod:`adapters.prefect.server`). Like those MLflow runs, its Prefect runs name their process in the
tags ``dgnn.host:<host>`` and ``dgnn.pid:<pid>`` (:func:`owned_runs`).
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Callable

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
    return {"crashed_runs": close_runs(_gone, lambda pid: f"process {pid} ended without closing the run"),
            "removed_folders": sweep_owned_temp_dirs()}


def _gone(pid: int) -> bool:
    return pid != os.getpid() and not pid_alive(pid)


def close_runs(owner: Callable[[int], bool], message: Callable[[int], str]) -> list[str]:
    """Close the flow runs that a process of this host tagged and ``owner(pid)`` picks: RUNNING and
    PENDING ones (and their task runs) are set CRASHED with ``message(pid)``, SCHEDULED ones (a
    stopped ``dgnn serve``'s next runs, which would all fire late) are deleted; their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    closed, ended = [], {}
    with get_client(sync_client=True) as client:
        for run in _read(client, "flow", [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED]):
            pid = _owner_pid(run.tags)
            if pid is None or not owner(pid):
                continue
            if run.state_type == StateType.SCHEDULED:
                client.delete_flow_run(run.id)
            else:
                client.set_flow_run_state(run.id, Crashed(message=message(pid)), force=True)
                ended[run.id] = pid
            closed.append(str(run.id))
        for run in _read(client, "task", [StateType.RUNNING], list(ended)):
            pid = ended.get(run.flow_run_id) or _owner_pid(run.tags)
            if pid is not None and owner(pid):
                client.set_task_run_state(run.id, Crashed(message=message(pid)), force=True)
                closed.append(str(run.id))
    return closed


def _read(client, kind: str, states: list, flow_run_ids: list | None = None) -> list:
    """The ``kind`` ("flow" / "task") runs in ``states`` that this host's processes tagged, and the
    task runs of ``flow_run_ids`` (a served flow run's tasks carry no tags: the deployment's go to
    its flow runs only)."""
    from prefect.client.schemas import filters

    host = [f"{HOST_TAG}:{socket.gethostname()}"]
    if kind == "flow":
        return client.read_flow_runs(flow_run_filter=filters.FlowRunFilter(
            state=filters.FlowRunFilterState(type=filters.FlowRunFilterStateType(any_=states)),
            tags=filters.FlowRunFilterTags(all_=host)))
    state = filters.TaskRunFilterState(type=filters.TaskRunFilterStateType(any_=states))
    runs = client.read_task_runs(task_run_filter=filters.TaskRunFilter(
        state=state, tags=filters.TaskRunFilterTags(all_=host)))
    if flow_run_ids:
        runs += client.read_task_runs(task_run_filter=filters.TaskRunFilter(
            state=state, flow_run_id=filters.TaskRunFilterFlowRunId(any_=flow_run_ids)))
    return list({run.id: run for run in runs}.values())


def _owner_pid(tags: list[str]) -> int | None:
    values = [tag.removeprefix(f"{PID_TAG}:") for tag in tags if tag.startswith(f"{PID_TAG}:")]
    return int(values[0]) if values and values[0].isdigit() else None
