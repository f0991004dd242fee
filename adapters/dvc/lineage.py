"""Which data a tracked run was trained on, and whether it is still here (``dgnn lineage RUN_ID``,
whose command is :mod:`cli.lineage`).

Reads the MLflow run (``$MLFLOW_TRACKING_URI``, default ``sqlite:///<project>/mlruns/mlflow.db``)
and prints its dataset, task, git commit, data version, the DVC stage hashes it recorded (tags
``dvc.fetch``, ``dvc.normalise``, ``dvc.propagate``) and its params; then compares them with the
workspace: the stage hashes in ``dvc.lock``, ``dvc status`` of the outputs, every stored folder
against its ``meta.json``, and the run's ``data_content_hash`` against the propagated features in
``<project>/data`` (the only comparison that applies to a run on data DVC did not track).

Exit status: 0 when the workspace matches the run ("matches"), 1 when anything differs
("DIFFERS: ..." lists each difference and how to get the run's data back), 2 when the run cannot
be read. Changed stage dependencies (code, params) that ``dvc repro`` would act on are listed as
notes and do not make the data differ.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def lineage(run_id: str, project_dir=None, tracking_uri: str | None = None) -> dict:
    """The run's recorded lineage and its comparison with the workspace, as a dict; ``run_id`` may
    also be a unique prefix of the id or the run's name (:func:`find_run`)."""
    from mlflow.tracking import MlflowClient

    from adapters.dvc import repo as dvc
    from adapters.mlflow import tracking
    from adapters.process import settings

    project = Path(project_dir).resolve() if project_dir else settings.project_dir()
    uri = tracking_uri or settings.tracking_uri()
    run = find_run(MlflowClient(tracking_uri=uri), run_id)
    tags = run.data.tags
    dataset = tags.get("dataset") or run.data.params.get("dataset")
    if not dataset:
        raise ValueError(f"run {run_id} has no `dataset` tag or param: not a dgnn pipeline run")
    stages = {stage: tags.get(dvc.stage_tag(stage)) for stage in dvc.STAGES}
    differences, notes = dvc.workspace_differences(dataset, stages, project)
    difference = content_difference(dataset, tags.get("data_content_hash"), project)
    if difference:
        differences.append(difference)
    if tags.get("data_version") not in (None, stages["propagate"]):
        differences.append(f"data_version tag {tags['data_version']} is not the propagate hash "
                           f"{stages['propagate']}")
    head = tracking.git_commit(project).get("git_commit")
    commit = tags.get("git_commit")
    if commit and head and not head.startswith(commit.split("-")[0].split("+")[0]):
        notes.append(f"git HEAD is {head}, the run was made at {commit}")
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "tracking_uri": uri,
        "dataset": dataset,
        "task": tags.get("task"),
        "git_commit": commit,
        "data_version": tags.get("data_version"),
        "data_content_hash": tags.get("data_content_hash"),
        "stages": {f"{stage}@{dataset}": value for stage, value in stages.items()},
        "params": dict(sorted(run.data.params.items())),
        "project": str(project),
        "workspace": "matches" if not differences else "differs",
        "differences": differences,
        "notes": notes,
    }


def find_run(client, ref: str):
    """The run ``ref`` names: its id, a unique prefix of it (at least 6 characters, as the UI shows
    ids shortened), or its run name (``cora-classify-seed0-run3``: unique for pipeline runs)."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    if len(ref) == 32:
        with contextlib.suppress(MlflowException):
            return client.get_run(ref)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    matches = []
    if experiments and "'" not in ref:
        matches = client.search_runs(experiments, f"attributes.run_name = '{ref}'", ViewType.ALL, max_results=10)
    if not matches and len(ref) >= 6 and all(c in "0123456789abcdef" for c in ref):
        matches, token = [], None
        while True:
            page = client.search_runs(experiments, "", ViewType.ALL, max_results=1000, page_token=token)
            matches += [r for r in page if r.info.run_id.startswith(ref)]
            token = page.token
            if not token:
                break
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(f"no run has the id, id prefix (6 characters or more) or name {ref!r}")
    ids = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in matches[:3])
    raise ValueError(f"{ref!r} names {len(matches)} runs ({ids}{', ...' if len(matches) > 3 else ''}): "
                     "give the whole run id")


def content_difference(dataset: str, recorded: str | None, project: Path) -> str | None:
    """How the run's ``data_content_hash`` differs from ``<project>/data/<dataset>/propagated``
    (None when equal, or when the run recorded none)."""
    from dgnn.data.stage_folders import is_stored, read_meta

    folder = project / "data" / dataset / "propagated"
    have = read_meta(folder)["content_hash"] if is_stored(folder) else None
    if recorded is None or recorded == have:
        return None
    return (f"data/{dataset}/propagated: content hash {have or 'missing (not built)'}, the run trained on "
            f"{recorded} (data from another folder or rebuilt since)")
