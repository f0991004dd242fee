"""The model registry: a pipeline run adds a version of ``dgnn-<dataset>-<task>`` only when it
brings something new.

A run is compared with every version, not just the latest: one with the same data and config
(the version tags named in ``identity``: ``data_version``, ``data_content_hash``, ``config_hash``),
the same ``replica`` tags (seed, device) and the same validation criterion is its twin, and adds
nothing (the pipeline then logs no second copy of the model). Otherwise a run adds a version when no
version has its data and config, or when its criterion beats the champion's. Either way the reason
comes back as ``decision`` (the pipeline tags its run ``registry_decision``). The alias ``champion``
moves to a new version only if its criterion beats the current champion's; the run tag ``champion``
follows the alias (the previous champion's run is retagged ``false``).
"""

from __future__ import annotations


from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from adapters.mlflow import logged_model, tracking

CHAMPION = "champion"


def log_and_register(mlflow_client: MlflowClient, run_id: str, save_model, metrics: dict, name: str,
                     criterion: float, criterion_name: str, identity: dict, replica: dict,
                     tags: dict | None = None, description: str | None = None, rescore=None) -> dict:
    """Log the run's model as a Logged Model (``save_model(folder, mlflow_model)`` writes it) with
    the run's ``metrics`` linked to it, unless a twin version holds it already (then the metrics go
    to the run alone), and :func:`register_model` it; tags the run with the outcome and its model's
    URI (``run_model_uri``: its own ``models:/m-<id>``, or the twin version's)."""
    repeated = twin(mlflow_client, name, identity, replica, criterion)
    model_id = None
    if repeated is None:
        model_id = logged_model.log_model(mlflow_client, run_id, save_model, {**identity, **replica})
    tracking.log_batch(mlflow_client, run_id, metrics=tracking.metric_items(metrics, model_id=model_id))
    registered = register_model(mlflow_client, name, run_id, model_id, criterion, criterion_name, identity, tags,
                                description, replica, rescore)
    model_uri = f"models:/{model_id}" if repeated is None else f"models:/{name}/{repeated}"
    tracking.set_tags(mlflow_client, run_id, {"registered_model": name, "registered_version": registered["version"]
                                              or "none", "registry_decision": registered["decision"],
                                              "model_uri": model_uri})
    return registered | {"run_model_uri": model_uri}


def register_model(mlflow_client: MlflowClient, name: str, run_id: str, model_id: str | None,
                   criterion: float, criterion_name: str, identity: dict, tags: dict | None = None,
                   description: str | None = None, replica: dict | None = None, rescore=None) -> dict:
    """Register Logged Model ``model_id`` of run ``run_id`` as a new version of ``name`` (tagged
    with ``identity``, ``replica`` and ``tags``, e.g. the tune that chose its config) if
    :func:`decide` says so (never for a twin's run, which logged no model: ``model_id`` None).
    A champion trained on another data version is compared by its criterion on this one:
    ``rescore(version)`` (:func:`on_this_data`)."""
    with tracking.store_lock(mlflow_client.tracking_uri):  # decide and add as one step: sweeps run side by side
        _ensure_model(mlflow_client, name, description)
        versions, (current, own_value) = _versions(mlflow_client, name), _champion(mlflow_client, name)
        current_value, note = on_this_data(current, own_value, identity, rescore)
        register, decision = decide(versions, identity, replica or {}, criterion, criterion_name, current,
                                    current_value)
        decision += note
        version = None
        if register:
            version = int(_create_version(
                mlflow_client, name, f"models:/{model_id}", run_id=run_id, model_id=model_id,
                tags={"criterion": criterion_name, "val_criterion": repr(float(criterion)),
                      **{k: str(v) for k, v in {**identity, **(replica or {}), **(tags or {})}.items()}},
            ).version)
        champion = register and (current is None or float(criterion) > current_value)
        if note:
            decision += "; the alias moves here" if champion else f"; the champion stays version {current.version}"
        if champion:
            mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
            if current is not None and current.run_id and current.run_id != run_id:
                tracking.set_tags(mlflow_client, current.run_id, {CHAMPION: "false"})
        tracking.set_tags(mlflow_client, run_id, {CHAMPION: str(champion).lower(),
                                                  **({"rescored_champion_criterion": repr(current_value)} if note else {})})
    return {
        "name": name,
        "version": version,
        "model_uri": None if version is None else f"models:/{name}/{version}",
        "champion": champion,
        "decision": decision,
        "latest_version": int(versions[0].version) if versions else None,
        "previous_champion": None if current is None else int(current.version),
        "previous_champion_criterion": None if current is None else current_value,
        "previous_champion_own_criterion": None if current is None else own_value,
    }


def on_this_data(champion: ModelVersion | None, value: float, identity: dict, rescore) -> tuple[float, str]:
    """The champion's criterion on the run's data version, and a note for the decision: its own
    where it was trained on this version, else ``rescore(champion)`` (its modules applied to this
    version's graph and validation split): figures of two data versions are not comparable."""
    if champion is None or rescore is None or champion.tags.get("data_version") == str(identity.get("data_version")):
        return value, ""
    try:
        rescored = float(rescore(champion))
    except ValueError as err:  # the new version does not fit it (a class it never saw, other columns)
        return float("-inf"), f"; the champion (version {champion.version}) cannot score this data version: {err}"
    return rescored, (f"; the champion (version {champion.version}) re-scored on this data version: "
                      f"{rescored:.4f} ({value:.4f} on its own)")


def _create_version(mlflow_client: MlflowClient, name: str, source: str, **kwargs) -> ModelVersion:
    """``create_model_version`` of a ``models:/m-<id>`` source: the sqlite registry looks the logged
    model up with a client of the process's tracking URI, not this client's, so that URI is this
    client's meanwhile (under :func:`register_model`'s store lock), and then what it was again.

    MLflow's module global is swapped, not ``mlflow.set_tracking_uri``: that also writes
    ``$MLFLOW_TRACKING_URI``, which then outlives the swap (MLflow's ``_use_tracking_uri`` restores an
    unset URI by deleting the variable), and every later run of the process (a sweep's, a served
    one) would go to the wrong store."""
    from mlflow.tracking._tracking_service import utils  # the URI set_tracking_uri sets (no public setter without the env)

    saved = utils._tracking_uri
    utils._tracking_uri = mlflow_client.tracking_uri
    try:
        return mlflow_client.create_model_version(name, source, **kwargs)
    finally:
        utils._tracking_uri = saved


def twin(mlflow_client: MlflowClient, name: str, identity: dict, replica: dict, criterion: float) -> int | None:
    """The version that a run with these tags and validation ``criterion`` would repeat, if any."""
    found = _twin(_versions(mlflow_client, name), identity, replica, criterion)
    return None if found is None else int(found.version)


def decide(versions: list[ModelVersion], identity: dict, replica: dict, criterion: float, criterion_name: str,
           champion: ModelVersion | None, champion_value: float) -> tuple[bool, str]:
    """Whether a run with ``identity``, ``replica`` and validation ``criterion`` adds a version to
    ``versions`` (newest first), and why."""
    if not versions:
        return True, "registered: first version"
    repeated = _twin(versions, identity, replica, criterion)
    if repeated is not None:
        return False, (f"not registered: identical to version {repeated.version} (same data, config, "
                       f"{', '.join(replica) or 'replica'} and {criterion_name} {criterion:.4f})")
    same = next((v for v in versions if _has(v, identity)), None)
    if same is None:
        changed = [k for k, v in identity.items() if versions[0].tags.get(k) != str(v)]
        return True, f"registered: {', '.join(changed)} changed since version {versions[0].version}"
    if champion is None or float(criterion) > champion_value:
        return True, f"registered: {criterion_name} {criterion:.4f} beats the champion's {champion_value:.4f}"
    return False, (f"not registered: same data and config as version {same.version}, and "
                   f"{criterion_name} {criterion:.4f} does not beat the champion's {champion_value:.4f} "
                   f"(version {champion.version})")


def _has(version: ModelVersion, tags: dict) -> bool:
    return all(version.tags.get(k) == str(v) for k, v in tags.items())


def _twin(versions: list[ModelVersion], identity: dict, replica: dict, criterion: float) -> ModelVersion | None:
    return next((v for v in versions if replica and _has(v, {**identity, **replica})
                 and v.tags.get("val_criterion") == repr(float(criterion))), None)


def _ensure_model(mlflow_client: MlflowClient, name: str, description: str | None) -> None:
    try:
        mlflow_client.create_registered_model(name, description=description)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code) and "already exists" not in str(err):
            raise
        if description and not mlflow_client.get_registered_model(name).description:
            mlflow_client.update_registered_model(name, description=description)  # made before descriptions


def _versions(mlflow_client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, newest first (versions are added only when new: a short list)."""
    versions, token = [], None
    while True:
        page = mlflow_client.search_model_versions(f"name = '{name}'", max_results=1000,
                                                   order_by=["version_number DESC"], page_token=token)
        versions += list(page)
        token = page.token
        if not token:
            return versions


def _champion(mlflow_client: MlflowClient, name: str) -> tuple[ModelVersion | None, float]:
    try:
        current = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, float("-inf")
    return current, float(current.tags.get("val_criterion", "-inf"))
