"""The model registry: a pipeline run adds a version of ``dgnn-<dataset>-<task>`` only when it
brings something new.

New means: its data or config differ from the latest version's (the version tags named in
``identity``: ``data_version``, ``data_content_hash``, ``config_hash``), or its validation
criterion beats the champion's. Either way the reason comes back as ``decision`` (the pipeline
tags its run ``registry_decision``). The alias ``champion`` moves to a new version only if its
criterion beats the current champion's.
"""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from adapters import tracking

CHAMPION = "champion"


def register_model(mlflow_client: MlflowClient, name: str, run_id: str, artifact_path: str,
                   criterion: float, criterion_name: str, identity: dict, tags: dict | None = None,
                   description: str | None = None) -> dict:
    """Register ``runs:/<run_id>/<artifact_path>`` as a new version of ``name`` (tagged with
    ``identity`` and ``tags``, e.g. the tune that chose its config) if :func:`decide` says so."""
    source = f"{mlflow_client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    with tracking.store_lock(mlflow_client.tracking_uri):  # decide and add as one step: sweeps run side by side
        _ensure_model(mlflow_client, name, description)
        latest, (current, current_value) = _latest(mlflow_client, name), _champion(mlflow_client, name)
        register, decision = decide(latest, identity, criterion, criterion_name, current, current_value)
        version = None
        if register:
            version = int(mlflow_client.create_model_version(
                name, source, run_id=run_id,
                tags={"criterion": criterion_name, "val_criterion": repr(float(criterion)),
                      **{k: str(v) for k, v in {**identity, **(tags or {})}.items()}},
            ).version)
        champion = register and (current is None or float(criterion) > current_value)
        if champion:
            mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
    return {
        "name": name,
        "version": version,
        "model_uri": None if version is None else f"models:/{name}/{version}",
        "champion": champion,
        "decision": decision,
        "latest_version": None if latest is None else int(latest.version),
        "previous_champion": None if current is None else int(current.version),
        "previous_champion_criterion": None if current is None else current_value,
    }


def decide(latest: ModelVersion | None, identity: dict, criterion: float, criterion_name: str,
           champion: ModelVersion | None, champion_value: float) -> tuple[bool, str]:
    """Whether a run with ``identity`` and validation ``criterion`` adds a version, and why."""
    if latest is None:
        return True, "registered: first version"
    changed = [k for k, v in identity.items() if latest.tags.get(k) != str(v)]
    if changed:
        return True, f"registered: {', '.join(changed)} changed since version {latest.version}"
    if champion is None or float(criterion) > champion_value:
        return True, f"registered: {criterion_name} {criterion:.4f} beats the champion's {champion_value:.4f}"
    return False, (f"not registered: same data and config as version {latest.version}, and "
                   f"{criterion_name} {criterion:.4f} does not beat the champion's {champion_value:.4f} "
                   f"(version {champion.version})")


def _ensure_model(mlflow_client: MlflowClient, name: str, description: str | None) -> None:
    try:
        mlflow_client.create_registered_model(name, description=description)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code) and "already exists" not in str(err):
            raise
        if description and not mlflow_client.get_registered_model(name).description:
            mlflow_client.update_registered_model(name, description=description)  # made before descriptions


def _latest(mlflow_client: MlflowClient, name: str) -> ModelVersion | None:
    found = mlflow_client.search_model_versions(f"name = '{name}'", max_results=1,
                                                order_by=["version_number DESC"])
    return found[0] if found else None


def _champion(mlflow_client: MlflowClient, name: str) -> tuple[ModelVersion | None, float]:
    try:
        current = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, float("-inf")
    return current, float(current.tags.get("val_criterion", "-inf"))
