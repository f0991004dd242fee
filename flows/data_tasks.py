"""Prefect tasks for the data stages: each runs the stage defined in ``dvc.yaml`` (no second copy).

``dvc.yaml`` is the single definition of the data stages (``fetch@<dataset>``,
``normalise@<dataset>``, ``propagate@<dataset>``, parameters in ``params.yaml``). The tasks here
run them with ``dvc repro <stage>@<dataset>`` in the project folder (``$DGNN_PROJECT_DIR``, else
the current directory), so ``dvc.lock`` always describes what the pipeline used, and
:func:`data_version` reads the hashes every MLflow run records from ``dvc.lock``.

Untracked data. A dataset that is not listed in ``params.yaml`` (a synthetic graph, or a graph
imported outside a DVC workspace) or a data folder (``$DGNN_DATA_DIR``) other than
``<project>/data`` cannot come from a DVC stage. The task then logs a warning and calls the same
:mod:`dgnn.data` stage function directly; its result has ``tracked: False``, :func:`data_version`
reports ``"untracked"`` (the run is tagged ``data_tracked=false``), and ``dgnn lineage`` reports
the workspace as differing. To version such data, add it to ``params.yaml`` (``dgnn import`` in
the project does that for a user's graph: :mod:`flows.imports`), train from ``<project>/data``
and run ``dvc repro``.

Every task returns a small dict (paths, hashes), never arrays. Results are cached across
processes (``persist_result=True``, as plain JSON: :mod:`flows.json_results`) on the inputs, the task source, the data folder and the
dataset's ``params.yaml`` entry: a key known before the first run and unchanged after it, so an
identical second run is answered from the cache. :func:`run_stage` runs a stage anyway (and
refreshes its entry) when its output is missing. :func:`validate_data` is never cached: it is the
check that output files are what was written and what ``dvc.lock`` says, so a corrupted output is
never used because a cached task skipped over it. :func:`fetch_data` retries network failures
(never a checksum mismatch or a full disk).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import yaml
from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE, CacheKeyFnPolicy

from dgnn.data import DataError, content_hash, verify
from dgnn.data.layout import data_root, dataset_dir
from dgnn.data.store import is_stored, read_meta, write_atomically
from flows import settings
from flows.json_results import SERIALIZER, PlainJsonOnly

STAGES = ("fetch", "normalise", "propagate")
_OUT = {"fetch": "graph", "normalise": "adj", "propagate": "propagated"}
UNTRACKED = "untracked"


class DvcError(DataError):
    """A ``dvc`` command failed; the message names the command and ends with its error output."""


def _project(project_dir=None) -> Path:
    return Path(project_dir).resolve() if project_dir else settings.project_dir()


def _logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # called outside a flow or task run (tests, plain scripts)
        return logging.getLogger("flows.data_tasks")


# ----------------------------------------------------------------------------- dvc.yaml / dvc.lock


def stage_name(stage: str, dataset: str) -> str:
    return f"{stage}@{dataset}"


def _yaml_section(path: Path, key: str) -> dict:
    if not path.is_file():
        return {}
    # libyaml's loader when PyYAML has it: dvc.lock is read several times a run
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return (yaml.load(path.read_text(), Loader=loader) or {}).get(key) or {}


def read_params(project_dir=None) -> dict:
    """``datasets:`` of ``params.yaml`` ({} when there is none)."""
    return _yaml_section(_project(project_dir) / "params.yaml", "datasets")


def read_lock(project_dir=None) -> dict:
    """The ``stages`` of ``dvc.lock`` ({} when there is none)."""
    return _yaml_section(_project(project_dir) / "dvc.lock", "stages")


def lock_hashes(dataset: str, project_dir=None, lock: dict | None = None) -> dict[str, str | None]:
    """{stage: md5 of its output as recorded in ``dvc.lock``} (None where the stage is not locked)."""
    lock = read_lock(project_dir) if lock is None else lock
    hashes = {}
    for stage in STAGES:
        outs = (lock.get(stage_name(stage, dataset)) or {}).get("outs") or []
        hashes[stage] = outs[0].get("md5") if outs else None
    return hashes


def data_version(dataset: str, project_dir=None) -> dict[str, str]:
    """What an MLflow run records as its data version, read from ``dvc.lock``.

    ``{"fetch": .., "normalise": .., "propagate": ..}`` are the md5s of the stage outputs
    (``data/<dataset>/graph``, ``adj``, ``propagated``) and ``data_version`` is the propagated
    output's md5 (its ``meta.json`` names the graph and adjacency it was computed from, so it pins
    all three). A dataset without stages in ``dvc.lock``, or data read from a folder other than
    ``<project>/data`` (which ``dvc.lock`` does not describe), gives ``"untracked"`` for every entry.
    """
    project = _project(project_dir)
    hashes = lock_hashes(dataset, project) if in_workspace(project) else dict.fromkeys(STAGES)
    version = {stage: hashes[stage] or UNTRACKED for stage in STAGES}
    version["data_version"] = version["propagate"]
    return version


# ----------------------------------------------------------------------------------- running dvc


@contextlib.contextmanager
def _dvc_lock(project: Path):
    """One ``dvc`` command at a time per project (tasks may run in several processes)."""
    folder = project / ".dvc" / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "dgnn-tasks.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def dvc_env() -> dict[str, str]:
    """The environment for ``dvc``: this interpreter's ``bin`` first on PATH (the stages run
    ``python -m dgnn.data.cli``), analytics off."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run_dvc(*args: str, project_dir=None) -> str:
    """Run ``dvc ARGS`` in the project folder; return its stdout or raise :class:`DvcError`."""
    project = _project(project_dir)
    with _dvc_lock(project):
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=dvc_env(),
                              capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise DvcError(f"`dvc {' '.join(args)}` failed in {project} (exit {proc.returncode}): {tail}")
    return proc.stdout


def dvc_status(dataset: str, project_dir=None) -> dict:
    """``dvc status --json`` of the dataset's three stages ({} when all are up to date)."""
    targets = [stage_name(s, dataset) for s in STAGES]
    return json.loads(run_dvc("status", "--json", *targets, project_dir=project_dir) or "{}")


def changed_outputs(status: dict) -> dict[str, str]:
    """{output path: "modified" / "deleted" / "not in cache"} from :func:`dvc_status`."""
    changed: dict[str, str] = {}
    for entries in status.values():
        for entry in entries:
            if isinstance(entry, dict):
                changed.update(entry.get("changed outs") or {})
    return changed


# ------------------------------------------------------------------------------------ the stages


def _tracked(dataset: str, project: Path) -> dict | None:
    """The dataset's ``params.yaml`` entry when its stages can run through DVC, else None (logged)."""
    entry = read_params(project).get(dataset)
    if entry is None:
        _logger().warning(
            "dataset %r is not in %s: running the dgnn.data stage directly, NOT versioned by DVC "
            "(add it under `datasets:` and run `dvc repro` to version it)", dataset, project / "params.yaml")
        return None
    if not in_workspace(project):
        _logger().warning(
            "DGNN_DATA_DIR=%s is not %s/data where the DVC stages write: running the dgnn.data stage "
            "directly, NOT versioned by DVC", data_root(), project)
        return None
    return entry


def in_workspace(project: Path, data_dir=None) -> bool:
    """True when the data folder (``data_dir``, else the default) is ``<project>/data``, where the
    DVC stages write."""
    return data_root(data_dir).resolve() == (project / "data").resolve()


def _in_dvc(dataset: str, project: Path) -> bool:
    """True when ``dvc.lock`` has the dataset's stages and they write where the data is read."""
    return in_workspace(project) and any(lock_hashes(dataset, project).values())


def _repro(stage: str, dataset: str, project: Path) -> None:
    """``dvc repro <stage>@<dataset>`` (its upstream stages are checked too: a no-op when current)."""
    out = run_dvc("repro", stage_name(stage, dataset), project_dir=project)
    for line in out.splitlines():
        if line.startswith(("Running stage", "Stage ")):
            _logger().info("dvc: %s", line)


def _result(dataset: str, stage: str, tracked: bool, project: Path, **extra) -> dict:
    folder = dataset_dir(dataset) / _OUT[stage]
    return {
        "dataset": dataset,
        "stage": stage_name(stage, dataset),
        "path": str(folder.resolve()),
        "content_hash": read_meta(folder)["content_hash"],
        "dvc_md5": lock_hashes(dataset, project)[stage] if tracked else None,
        "tracked": tracked,
        **extra,
    }


def _data_location(context, parameters) -> str:
    """Cache-key part: the resolved data folder, the dataset's ``params.yaml`` entry (changing a
    DVC stage parameter reruns the stages) and the ``.dvc`` file of its ``source`` if it has one
    (the files of an imported graph: importing changed files reruns them)."""
    project = settings.project_dir()
    entry = read_params(project).get(parameters.get("dataset"))
    dvc_file = project / f"{entry['source']}.dvc" if entry and entry.get("source") else None
    source = dvc_file.read_text() if dvc_file is not None and dvc_file.is_file() else None
    return json.dumps([str(data_root().resolve()), entry, source], sort_keys=True, default=str)


_CACHED = PlainJsonOnly(policy=INPUTS + TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_data_location))
_TRANSIENT_WORDS = ("cannot download", "timed out", "temporary failure", "connection reset",
                    "connection refused", "unable to acquire lock")


def _transient(task_, task_run, state) -> bool:
    """Retry a fetch only for network errors (a checksum mismatch or a full disk will not heal)."""
    err = state.data if isinstance(state.data, BaseException) else None
    if err is None:
        try:
            err = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001
            return True
    while err is not None:
        if isinstance(err, (URLError, ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if any(word in str(err).lower() for word in _TRANSIENT_WORDS):  # e.g. from a dvc subprocess
            return True
        err = err.__cause__
    return False


@task(task_run_name="fetch-{dataset}", cache_policy=_CACHED, persist_result=True, result_serializer=SERIALIZER,
      retries=3, retry_delay_seconds=[1, 2, 4], retry_condition_fn=_transient)
def fetch_data(dataset: str, split_seed: int = 0) -> dict:
    """Run ``fetch@<dataset>``: the validated graph in ``data/<dataset>/graph``.

    ``graph/`` always holds split seed 0; the masks of another ``split_seed`` (stratified datasets
    only; Planetoid splits are fixed) are derived from it into ``split-seed<k>/``.
    """
    from dgnn.data import fetch
    from dgnn.data.cli import default_mirror

    project = settings.project_dir()
    entry = _tracked(dataset, project)
    if entry is not None:
        _repro("fetch", dataset, project)
        if int(entry.get("split_seed", 0)) != split_seed:
            from dgnn.data.fetch import load_graph

            load_graph(dataset, split_seed=split_seed)  # writes split-seed<k>/ from the tracked graph
    else:
        fetch(dataset, mirror=default_mirror(), split_seed=split_seed)
    return _result(dataset, "fetch", entry is not None, project, split_seed=split_seed)


@task(task_run_name="validate-{dataset}", cache_policy=NO_CACHE)
def validate_data(dataset: str) -> dict:
    """Check the stored data before use; raise :class:`~dgnn.data.DataError` if anything changed.

    Every stored folder must match the content hash in its ``meta.json`` (``dgnn.data.verify``),
    and, for a dataset with DVC stages, no output may differ from ``dvc.lock`` (``dvc status``:
    "modified"). Outputs not built yet are fine (the next stage builds them). ``dvc status`` is
    skipped when outputs and ``dvc.lock`` are exactly as at its last clean verdict
    (:func:`_checked_state`, remembered in ``.dvc/tmp/dgnn-validated.json``).
    """
    project = settings.project_dir()
    result = verify(dataset)  # raises naming the folder whose files changed
    folders = sorted(str(p.resolve()) for p in dataset_dir(dataset).iterdir() if is_stored(p))
    status = "untracked"
    if _in_dvc(dataset, project):
        checked = _checked_state(dataset, project)
        if checked is None or _last_match(project).get(dataset) != checked:
            changed = {path: how for path, how in changed_outputs(dvc_status(dataset, project)).items()
                       if how == "modified"}
            if changed:
                paths = " ".join(sorted(changed))
                raise DataError(
                    f"{paths}: differ(s) from dvc.lock (modified after DVC recorded it: corrupted, or "
                    f"rewritten outside DVC); refusing to use it. Restore it with `dvc checkout {paths}` "
                    f"(or `dvc pull {paths}`), or rebuild it with `dvc repro --force "
                    f"{' '.join(stage_name(s, dataset) for s in STAGES)}`"
                )
            if checked is not None:
                _remember_match(project, dataset, checked)
        status = "matches dvc.lock"
    return {"dataset": dataset, "content_hash": result.content_hash, "folders": folders, "dvc": status}


# `dvc status` is a new Python process (about 0.5 s). validate_data skips it when the outputs and
# their dvc.lock hashes are exactly as they were at the last `dvc status` that found nothing
# modified: DVC's verdict is a function of those two, so it cannot have changed.
_MATCHED = "dgnn-validated.json"


def _checked_state(dataset: str, project: Path) -> dict | None:
    """dvc.lock's output hashes plus a fingerprint of each output folder, or None when an output
    is not a stored folder (then only DVC can say what it is).

    Call after :func:`dgnn.data.verify`: every data file then matches the SHA-256 in its folder's
    ``meta.json``, so the ``meta.json`` bytes and the folder's listing pin all of its content.
    """
    import hashlib

    outputs = {}
    for stage in STAGES:
        folder = dataset_dir(dataset) / _OUT[stage]
        if not folder.exists():
            outputs[stage] = None
            continue
        if not is_stored(folder):
            return None
        listing = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
        digest = hashlib.sha256("\0".join(listing).encode())
        digest.update((folder / "meta.json").read_bytes())
        outputs[stage] = digest.hexdigest()
    return {"lock": lock_hashes(dataset, project), "outputs": outputs}


def _last_match(project: Path) -> dict:
    try:
        return json.loads((project / ".dvc" / "tmp" / _MATCHED).read_text())
    except (OSError, ValueError):
        return {}


def _remember_match(project: Path, dataset: str, state: dict) -> None:
    path = project / ".dvc" / "tmp" / _MATCHED
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**_last_match(project), dataset: state}, indent=1, sort_keys=True)
    write_atomically(path, lambda tmp: tmp.write_text(text))


@task(task_run_name="normalise-{dataset}", cache_policy=_CACHED, persist_result=True, result_serializer=SERIALIZER)
def normalise_data(dataset: str) -> dict:
    """Run ``normalise@<dataset>``: the normalised adjacency in ``data/<dataset>/adj``."""
    project = settings.project_dir()
    entry = _tracked(dataset, project)
    if entry is not None:
        _repro("normalise", dataset, project)
    else:
        from dgnn.data import normalise_stage

        normalise_stage(dataset)
    return _result(dataset, "normalise", entry is not None, project)


@task(task_run_name="propagate-{dataset}", cache_policy=_CACHED, persist_result=True, result_serializer=SERIALIZER)
def propagate_data(dataset: str, orders: list[int], feature_norm: str) -> dict:
    """Run ``propagate@<dataset>``: Â^k N(X) for the orders of ``params.yaml`` in ``propagated/``.

    ``orders`` are what the run would like stored (may be empty). For a dataset with DVC stages
    the stage runs as ``params.yaml`` defines it and its output is never rewritten: orders or a
    ``feature_norm`` it does not cover are logged and left to the trainer, which then filters the
    features in memory. A dataset without stages gets ``orders`` (at least order 1) directly.
    """
    project = settings.project_dir()
    orders = sorted({int(k) for k in orders})
    entry = _tracked(dataset, project)
    if entry is None:
        from dgnn.data import propagate_stage

        propagate_stage(dataset, orders or [1], feature_norm=feature_norm)
        return _result(dataset, "propagate", False, project, orders=orders or [1], feature_norm=feature_norm)
    params = entry.get("propagate") or {}
    stage_orders = sorted(int(k) for k in params.get("orders", []))
    stage_norm = params.get("feature_norm", "none")
    if not set(orders) <= set(stage_orders) or (orders and feature_norm != stage_norm):
        _logger().warning(
            "propagate %s: orders %s / feature_norm %r are not stored by the DVC stage (params.yaml: "
            "orders %s, feature_norm %r): the trainer computes them in memory. Add them to "
            "params.yaml and run `dvc repro` to store and version them.",
            dataset, orders, feature_norm, stage_orders, stage_norm)
    _repro("propagate", dataset, project)
    return _result(dataset, "propagate", True, project, orders=stage_orders, feature_norm=stage_norm)


def outputs_present(stage: str, dataset: str, orders=(), feature_norm: str = "none") -> bool:
    """Whether the stage's output folder is stored (for propagate: with these orders and norm)."""
    folder = dataset_dir(dataset) / _OUT[stage]
    if not is_stored(folder):
        return False
    if stage != "propagate":
        return True
    meta = read_meta(folder)
    return not orders or (meta.get("feature_norm", "none") == feature_norm
                          and set(orders) <= set(meta.get("orders", [])))


def run_stage(stage: str, *args):
    """Run the task of ``stage`` (``fetch``, ``validate``, ``normalise``, ``propagate``) on ``args``
    and return its final Prefect state; a cached stage whose output is missing runs again."""
    data_task = {"fetch": fetch_data, "validate": validate_data, "normalise": normalise_data,
                 "propagate": propagate_data}[stage]
    if stage != "validate":
        wanted = args[1:] if stage == "propagate" else ()  # (orders, feature_norm)
        data_task = data_task.with_options(refresh_cache=not outputs_present(stage, args[0], *wanted))
    return data_task(*args, return_state=True)


def workspace_differences(dataset: str, recorded: dict[str, str], project_dir=None) -> tuple[list, list]:
    """(differences, notes) between a run's recorded stage hashes, ``dvc.lock`` and the files.

    Differences: a stage hash in ``dvc.lock`` other than the recorded one, an output that
    ``dvc status`` finds modified or deleted, a stored folder whose files no longer match its
    ``meta.json``. Notes: changed stage dependencies (code, params) that ``dvc repro`` would act on.
    """
    project = _project(project_dir)
    problems, notes = [], []
    locked = lock_hashes(dataset, project)
    for stage in STAGES:
        want, have = recorded.get(stage) or UNTRACKED, locked[stage]
        if want == UNTRACKED or have is None or want != have:
            problems.append(f"{stage_name(stage, dataset)}: run recorded {want}, "
                            f"dvc.lock has {have or 'no such stage'}")
    if any(locked.values()):
        status = dvc_status(dataset, project)
        for path, state in sorted(changed_outputs(status).items()):
            if state in ("modified", "deleted"):
                problems.append(f"{path}: {state} (dvc status: not the data dvc.lock records)")
        for name, entries in sorted(status.items()):
            for entry in entries:
                if isinstance(entry, dict):
                    for kind in ("changed deps", "changed params"):
                        for dep, state in (entry.get(kind) or {}).items():
                            notes.append(f"{name}: {kind[8:]} {dep} {state}")
    folder = project / "data" / dataset
    if folder.is_dir():
        for stage_dir in sorted(p for p in folder.iterdir() if is_stored(p)):
            if content_hash(stage_dir) != read_meta(stage_dir)["content_hash"]:
                problems.append(f"{stage_dir.relative_to(project)}: files differ from its meta.json")
    return problems, notes
