"""DVC as the data stages see it: ``dvc.yaml``/``params.yaml``/``dvc.lock`` read as plain YAML,
``dvc`` commands run one at a time per project, the verdict of the last clean ``dvc status``
remembered, and the differences between a run's recorded stage hashes and the workspace (for
``dgnn lineage``). The Prefect tasks that run the stages are :mod:`flows.data_tasks`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from adapters.process import settings
from dgnn.data import DataError, content_hash
from dgnn.data.layout import data_root, dataset_dir
from dgnn.data.stage_folders import file_lock, is_stored, read_meta, write_atomically

STAGES = ("fetch", "normalise", "propagate")
_OUT = {"fetch": "graph", "normalise": "adj", "propagate": "propagated"}
UNTRACKED = "untracked"


class DvcError(DataError):
    """A ``dvc`` command failed; the message names the command and ends with its error output."""


def project_path(project_dir=None) -> Path:
    return Path(project_dir).resolve() if project_dir else settings.project_dir()


def logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # called outside a flow or task run (tests, plain scripts)
        return logging.getLogger("adapters.dvc.repo")


# ----------------------------------------------------------------------------- dvc.yaml / dvc.lock


def stage_tag(stage: str) -> str:
    """The MLflow run tag recording the hash of ``stage``'s output (``dvc.fetch``, ...)."""
    return f"dvc.{stage}"


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
    return _yaml_section(project_path(project_dir) / "params.yaml", "datasets")


def read_lock(project_dir=None) -> dict:
    """The ``stages`` of ``dvc.lock`` ({} when there is none)."""
    return _yaml_section(project_path(project_dir) / "dvc.lock", "stages")


def lock_hashes(dataset: str, project_dir=None, lock: dict | None = None) -> dict[str, str | None]:
    """{stage: md5 of its output as recorded in ``dvc.lock``} (None where the stage is not locked)."""
    lock = read_lock(project_dir) if lock is None else lock
    hashes = {}
    for stage in STAGES:
        outs = (lock.get(stage_name(stage, dataset)) or {}).get("outs") or []
        hashes[stage] = outs[0].get("md5") if outs else None
    return hashes


def data_version(dataset: str, project_dir=None, data_dir=None) -> dict[str, str]:
    """What an MLflow run records as its data version, read from ``dvc.lock``.

    ``{"fetch": .., "normalise": .., "propagate": ..}`` are the md5s of the stage outputs
    (``data/<dataset>/graph``, ``adj``, ``propagated``) and ``data_version`` is the propagated
    output's md5 (its ``meta.json`` names the graph and adjacency it was computed from, so it pins
    all three). A dataset without stages in ``dvc.lock``, or data read from a folder other than
    ``<project>/data`` (which ``dvc.lock`` does not describe), gives ``"untracked"`` for every entry.
    """
    project = project_path(project_dir)
    hashes = lock_hashes(dataset, project) if in_workspace(project, data_dir) else dict.fromkeys(STAGES)
    version = {stage: hashes[stage] or UNTRACKED for stage in STAGES}
    version["data_version"] = version["propagate"]
    return version


# ----------------------------------------------------------------------------------- running dvc


@contextlib.contextmanager
def _dvc_lock(project: Path):
    """One ``dvc`` command at a time per project (tasks may run in several processes)."""
    folder = project / ".dvc" / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "dgnn-tasks.lock"):
        yield


def dvc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``dvc``: this process's plus ``extra``, this interpreter's ``bin`` first
    on PATH (the stages run ``python -m cli.main``), analytics off."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run_dvc(*args: str, project_dir=None, env: dict[str, str] | None = None) -> str:
    """Run ``dvc ARGS`` in the project folder, ``env`` added to its environment; return its stdout
    or raise :class:`DvcError`."""
    project = project_path(project_dir)
    with _dvc_lock(project):
        # Its own session: on Ctrl-C or SIGTERM here, dvc and the stage it runs get SIGINT and are
        # waited for (subprocess.run would SIGKILL dvc and leave the stage running on).
        with subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=project, env=dvc_env(env), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True) as proc:
            try:
                stdout, stderr = proc.communicate()
            except BaseException:
                _interrupt(proc)
                raise
    if proc.returncode != 0:
        tail = " | ".join((stderr or stdout).strip().splitlines()[-5:])
        raise DvcError(f"`dvc {' '.join(args)}` failed in {project} (exit {proc.returncode}): {tail}")
    return stdout


def _interrupt(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGINT the process group of ``proc`` and wait for it; SIGKILL after ``timeout`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    except ProcessLookupError:
        pass


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


def tracked_entry(dataset: str, project: Path, data_dir=None) -> dict | None:
    """The dataset's ``params.yaml`` entry when its stages can run through DVC, else None (logged)."""
    entry = read_params(project).get(dataset)
    if entry is None:
        logger().warning(
            "dataset %r is not in %s: running the dgnn.data stage directly, NOT versioned by DVC "
            "(add it under `datasets:` and run `dvc repro` to version it)", dataset, project / "params.yaml")
        return None
    if not in_workspace(project, data_dir):
        logger().warning(
            "the data folder %s is not %s/data where the DVC stages write: running the dgnn.data stage "
            "directly, NOT versioned by DVC", data_root(data_dir), project)
        return None
    return entry


def in_workspace(project: Path, data_dir=None) -> bool:
    """True when the data folder (``data_dir``, else the default) is ``<project>/data``, where the
    DVC stages write."""
    return data_root(data_dir).resolve() == (project / "data").resolve()


def in_dvc(dataset: str, project: Path, data_dir=None) -> bool:
    """True when ``dvc.lock`` has the dataset's stages and they write where the data is read."""
    return in_workspace(project, data_dir) and any(lock_hashes(dataset, project).values())


def repro(stage: str, dataset: str, project: Path, env: dict[str, str] | None = None) -> None:
    """``dvc repro <stage>@<dataset>`` (its upstream stages are checked too: a no-op when current),
    ``env`` added to the stages' environment."""
    out = run_dvc("repro", stage_name(stage, dataset), project_dir=project, env=env)
    for line in out.splitlines():
        if line.startswith(("Running stage", "Stage ")):
            logger().info("dvc: %s", line)


def stage_result(dataset: str, stage: str, tracked: bool, project: Path, data_dir=None, **extra) -> dict:
    folder = dataset_dir(dataset, data_dir) / _OUT[stage]
    return {
        "dataset": dataset,
        "stage": stage_name(stage, dataset),
        "path": str(folder.resolve()),
        "content_hash": read_meta(folder)["content_hash"],
        "dvc_md5": lock_hashes(dataset, project)[stage] if tracked else None,
        "tracked": tracked,
        **extra,
    }


_MATCHED = "dgnn-validated.json"


def checked_state(dataset: str, project: Path, data_dir=None) -> dict | None:
    """dvc.lock's output hashes plus a fingerprint of each output folder, or None when an output
    is not a stored folder (then only DVC can say what it is).

    Call after :func:`dgnn.data.verify`: every data file then matches the SHA-256 in its folder's
    ``meta.json``, so the ``meta.json`` bytes and the folder's listing pin all of its content.
    """
    outputs = {}
    for stage in STAGES:
        folder = dataset_dir(dataset, data_dir) / _OUT[stage]
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


def last_match(project: Path) -> dict:
    try:
        return json.loads((project / ".dvc" / "tmp" / _MATCHED).read_text())
    except (OSError, ValueError):
        return {}


def remember_match(project: Path, dataset: str, state: dict) -> None:
    path = project / ".dvc" / "tmp" / _MATCHED
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**last_match(project), dataset: state}, indent=1, sort_keys=True)
    write_atomically(path, lambda tmp: tmp.write_text(text))

def check_lock(dataset: str, project: Path, data_dir=None) -> str:
    """``"matches dvc.lock"`` when no output of the dataset's stages differs from ``dvc.lock``,
    ``"untracked"`` when it has no stages; raises :class:`~dgnn.data.DataError` naming the
    modified outputs and the commands that restore them. ``dvc status`` is skipped when outputs
    and ``dvc.lock`` are exactly as at its last clean verdict (:func:`checked_state`). Call after
    :func:`dgnn.data.verify`."""
    if not in_dvc(dataset, project, data_dir):
        return UNTRACKED
    checked = checked_state(dataset, project, data_dir)
    if checked is None or last_match(project).get(dataset) != checked:
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
            remember_match(project, dataset, checked)
    return "matches dvc.lock"


def outputs_present(stage: str, dataset: str, orders=(), feature_norm: str = "none", data_dir=None) -> bool:
    """Whether the stage's output folder is stored (for propagate: with these orders and norm)."""
    folder = dataset_dir(dataset, data_dir) / _OUT[stage]
    if not is_stored(folder):
        return False
    if stage != "propagate":
        return True
    meta = read_meta(folder)
    return not orders or (meta.get("feature_norm", "none") == feature_norm
                          and set(orders) <= set(meta.get("orders", [])))



def workspace_differences(dataset: str, recorded: dict[str, str], project_dir=None) -> tuple[list, list]:
    """(differences, notes) between a run's recorded stage hashes, ``dvc.lock`` and the files.

    Differences: a stage hash in ``dvc.lock`` other than the recorded one, an output that
    ``dvc status`` finds modified or deleted, a stored folder whose files no longer match its
    ``meta.json``. Notes: changed stage dependencies (code, params) that ``dvc repro`` would act on.
    """
    project = project_path(project_dir)
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

