"""The run's model as an MLflow 3 Logged Model: ``models:/m-<id>``, in the run's Models column and
the experiment's Models tab, found by ``mlflow.search_logged_models``, its ``MLmodel`` naming its
id; the pipeline logs the run's headline metrics with that id, which links them to it.

``runs:/<run_id>/model`` still finds it (MLflow resolves a run's model by name).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from dgnn.processes import owned_temp_dir

NAME = "model"
MODEL_TYPE = "dgnn"


def log_model(mlflow_client: MlflowClient, run_id: str, write, tags: dict) -> str:
    """Log the model that ``write(folder, mlflow_model)`` saves (``mlflow_model``: the ``MLmodel``
    to write, naming the model's id) as Logged Model ``model`` of run ``run_id``, with the run's
    params and ``tags``; READY once its files are stored, FAILED if they could not be. Its id."""
    run = mlflow_client.get_run(run_id)
    model = mlflow_client.create_logged_model(run.info.experiment_id, name=NAME, source_run_id=run_id,
                                              params=dict(run.data.params), model_type=MODEL_TYPE,
                                              tags={k: str(v) for k, v in tags.items()})
    try:
        with owned_temp_dir("model") as tmp:
            folder = Path(tmp) / NAME
            write(folder, Model(artifact_path=model.artifact_location, run_id=run_id, model_id=model.model_id,
                                model_uuid=model.model_id))
            mlflow_client.log_model_artifacts(model.model_id, str(folder))
    except BaseException:
        with contextlib.suppress(MlflowException):  # the store may be what failed: the first error tells
            mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    mlflow_client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    return model.model_id
