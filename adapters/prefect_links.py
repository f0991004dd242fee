"""What a pipeline's Prefect flow run shows: the MLflow parent run's name, tags to filter runs by
(``dataset:cora``, ``task:classify``, ``config:tiny``) and a link artifact to the MLflow run."""

from __future__ import annotations

# The page ``dgnn ui`` serves for a sqlite store (a tracking server serves its own).
LOCAL_UI = "http://127.0.0.1:5000"


def label_flow_run(name: str, tags: dict) -> None:
    """Rename the current flow run and add ``key:value`` tags to those it started with."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name,
                               tags=sorted({*flow_run.tags, *(f"{k}:{v}" for k, v in tags.items())}))
    _NAMES[str(flow_run.id)] = name


# The names given by :func:`label_flow_run` in this process: the engine hands its hooks a copy of
# the flow run taken before, and a run's last words (the serve gone, the API with it) must name
# it as the UI does.
_NAMES: dict[str, str] = {}


def flow_run_name(flow_run) -> str:
    """The name of ``flow_run`` (a Prefect ``FlowRun``), as last set in this process."""
    return _NAMES.get(str(flow_run.id), flow_run.name)


def _served(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    base = tracking_uri.rstrip("/") if _served(tracking_uri) else LOCAL_UI
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def link_mlflow_run(tracking_uri: str, experiment_id: str, run_id: str, run_name: str) -> None:
    """A link artifact on the current flow run to its MLflow parent run."""
    from prefect.artifacts import create_link_artifact

    create_link_artifact(link=mlflow_run_url(tracking_uri, experiment_id, run_id), link_text=f"MLflow run {run_name}",
                         description=f"MLflow run `{run_id}` in `{tracking_uri}`"
                         + ("" if _served(tracking_uri) else " (serve it with `dgnn ui`)"))
