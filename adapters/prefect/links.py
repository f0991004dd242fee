"""What a pipeline's Prefect flow run shows: the MLflow parent run's name, tags to filter runs by
(``dataset:cora``, ``task:classify``, ``config:tiny``), and keyed artifacts: a link to the MLflow
run, the final metrics as a table and the registry's decision. Keyed, because Prefect's Artifacts
page lists keyed artifacts only, each key with its history over the runs (the key is the MLflow
experiment's name, e.g. ``dgnn-cora-classify-metrics``)."""

from __future__ import annotations

import re

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


def artifact_key(experiment: str, what: str) -> str:
    """``<experiment>-<what>`` in the characters Prefect allows in a key (lowercase, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{experiment}-{what}".lower())


def link_mlflow_run(tracking_uri: str, experiment: str, experiment_id: str, run_id: str, run_name: str) -> None:
    """A link artifact on the current flow run to its MLflow parent run."""
    from prefect.artifacts import create_link_artifact

    create_link_artifact(key=artifact_key(experiment, "mlflow-run"),
                         link=mlflow_run_url(tracking_uri, experiment_id, run_id), link_text=f"MLflow run {run_name}",
                         description=f"MLflow run `{run_id}` in `{tracking_uri}`"
                         + ("" if _served(tracking_uri) else " (serve it with `dgnn ui`)"))


def result_line(metrics: dict, registered: dict) -> str:
    """One line of the run's result, for the task log: what a served deployment's terminal shows per run."""
    shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.endswith(("_acc", "nmi", "f1", "auc")))
    return f"result: {shown}; {registered['decision']}"


def report_results(experiment: str, metrics: dict, registered: dict) -> None:
    """The run's final metrics (a table, and one line of the task's log) and what the registry did
    with its model (markdown)."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    get_run_logger().info(result_line(metrics, registered))

    create_table_artifact(key=artifact_key(experiment, "metrics"),
                          table=[{"metric": k, "value": v} for k, v in metrics.items()],
                          description="final metrics of the run (the pass is chosen on validation)")
    create_markdown_artifact(key=artifact_key(experiment, "registry"),
                             markdown=f"{registered['decision']}\n\nmodel: `{registered['run_model_uri']}`",
                             description="the model registry's decision")


def report_drift(experiment: str, drift: dict) -> None:
    """What changed since the previous data version (:func:`dgnn.data.drift.drift_summary`), as a table."""
    from prefect.artifacts import create_table_artifact

    rows = [{"what": what, **counts} for what, counts in (("nodes", drift["nodes"]), ("edges", drift["edges"]))]
    rows += [{"what": f"label {name}", **counts} for name, counts in drift["label_counts"].items()]
    create_table_artifact(key=artifact_key(experiment, "drift"), table=rows,
                          description=f"the graph against its previous data version; "
                                      f"{drift['labels_changed']} node(s) changed label")
