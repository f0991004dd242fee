"""The DVC data stages in a throw-away copy of the project, with real ``dvc`` commands.

The copy holds every file git tracks or would track (``git ls-files -co --exclude-standard``),
committed to a fresh git repository, so ``dvc.lock`` is the committed one. One module-scoped
``dvc repro`` of the Cora stages serves every test; each test leaves the copy as it found it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flows_conftest import TINY  # tests/ is on sys.path
from adapters.process import settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CORA = ["fetch@cora", "normalise@cora", "propagate@cora"]


def _env(mirror: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DGNN_DATA_DIR", "DGNN_PROJECT_DIR")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(DGNN_DATA_MIRROR=str(mirror), DVC_NO_ANALYTICS="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _sh(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _dvc(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _sh([sys.executable, "-m", "dvc", *args], project, project.env, check)


def _outs(lock_text: str, stages=CORA) -> dict:
    stages_ = yaml.safe_load(lock_text)["stages"]
    return {name: stages_[name]["outs"][0]["md5"] for name in stages}


def _file_hashes(folder: Path) -> dict:
    """SHA-256 of the files in the stage folders under ``folder`` (``data/<name>``); the load
    verdicts remembered beside them are no DVC output."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.parent != folder}


class Project(type(Path())):
    env: dict


@pytest.fixture
def inside(project, monkeypatch):
    """Run library and task code in the copy, as the pipeline would (cwd = project)."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("DGNN_PROJECT_DIR", str(project))
    monkeypatch.setenv("DGNN_DATA_MIRROR", project.env["DGNN_DATA_MIRROR"])
    monkeypatch.delenv("DGNN_DATA_DIR", raising=False)
    return project


@pytest.fixture(scope="module")
def project(shared_datasets, tmp_path_factory) -> Path:
    """A git repository holding a copy of the project with the Cora stages reproduced."""
    assert (ROOT / "dvc.yaml").is_file() and (ROOT / "dvc.lock").is_file(), "dvc.yaml / dvc.lock are part of the project"
    base = tmp_path_factory.mktemp("dvc")
    project = Project(base / "project")
    project.env = _env(shared_datasets)
    files = _sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT, project.env).stdout
    for name in filter(None, files.split("\0")):
        source = ROOT / name
        if source.is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    _sh(["git", "init", "-q"], project, project.env)
    _sh(["git", "add", "-A"], project, project.env)
    _sh([*git, "commit", "-qm", "copy"], project, project.env)
    project.repro = _dvc(project, "repro", *CORA)
    yield project
    shutil.rmtree(base, ignore_errors=True)


def test_repro_in_a_fresh_copy_rebuilds_cora_with_the_committed_hashes(project):
    for stage in CORA:
        assert f"Running stage '{stage}'" in project.repro.stdout
    committed = _sh(["git", "show", "HEAD:dvc.lock"], project, project.env).stdout
    assert _outs((project / "dvc.lock").read_text()) == _outs(committed)
    assert not (project / "data" / ".gitignore").exists()  # data/ stays ignored by the /data/* rule
    assert _sh(["git", "status", "--porcelain", "--", "data"], project, project.env).stdout == ""


def test_second_repro_is_a_noop(project):
    before = (project / "dvc.lock").read_text()
    out = _dvc(project, "repro", *CORA).stdout
    assert "Running stage" not in out
    assert all(f"Stage '{s}' didn't change, skipping" in out for s in CORA)
    assert json.loads(_dvc(project, "status", "--json", *CORA).stdout) == {}
    assert (project / "dvc.lock").read_text() == before


def test_changing_an_order_reruns_only_that_propagate_stage(project):
    params = project / "params.yaml"
    original, lock_before = params.read_text(), (project / "dvc.lock").read_text()
    params_data = yaml.safe_load(original)
    orders = params_data["datasets"]["cora"]["propagate"]["orders"]
    cora_block = re.search(r"\n  cora:\n(    .*\n)+", original).group(0)
    changed = cora_block.replace(f"orders: {orders}".replace("'", ""), f"orders: {orders[:-1]}")
    assert changed != cora_block
    params.write_text(original.replace(cora_block, changed))
    try:
        out = _dvc(project, "repro", *CORA).stdout
        assert "Running stage 'propagate@cora'" in out
        assert "Running stage 'fetch@cora'" not in out and "Running stage 'normalise@cora'" not in out
        meta = json.loads((project / "data/cora/propagated/meta.json").read_text())
        assert meta["orders"] == orders[:-1]
        old, new = yaml.safe_load(lock_before)["stages"], yaml.safe_load((project / "dvc.lock").read_text())["stages"]
        assert {k for k in old if old[k] != new.get(k)} == {"propagate@cora"}
    finally:
        params.write_text(original)
    back = _dvc(project, "repro", *CORA).stdout  # the run cache restores the committed outputs
    assert "Running stage" not in back
    assert _outs((project / "dvc.lock").read_text()) == _outs(lock_before)
    assert json.loads(_dvc(project, "status", "--json", *CORA).stdout) == {}


def test_push_delete_pull_gives_identical_files(project):
    remote = Path(_dvc(project, "remote", "list").stdout.split()[1])
    assert remote.resolve() == (project.parent / "dgnn-dvc-remote").resolve()  # outside the repo
    before = _file_hashes(project / "data" / "cora")
    _dvc(project, "push", *CORA)
    shutil.rmtree(project / ".dvc" / "cache")
    shutil.rmtree(project / "data" / "cora")
    assert json.loads(_dvc(project, "status", "--json", *CORA).stdout)  # missing now
    _dvc(project, "pull", *CORA)
    assert _file_hashes(project / "data" / "cora") == before
    assert json.loads(_dvc(project, "status", "--json", *CORA).stdout) == {}


def test_a_corrupted_output_is_detected_never_used(project, inside, monkeypatch):
    from dgnn.data import DataError
    from adapters.dvc import repo as dvc
    from flows import data_tasks

    assert data_tasks.validate_data.fn("cora")["dvc"] == "matches dvc.lock"
    target = project / "data" / "cora" / "propagated" / "p2.npy"
    original = target.read_bytes()
    target.write_bytes(original[:-8] + b"\0" * 8)  # same size, different bytes
    try:
        status = _dvc(project, "status", "propagate@cora").stdout
        assert "modified:" in status and "data/cora/propagated" in status
        with pytest.raises(DataError, match="propagated changed after it was written"):
            data_tasks.validate_data.fn("cora")
        differences, _ = dvc.workspace_differences("cora", dvc.data_version("cora"), project)
        assert any("data/cora/propagated: modified" in d for d in differences)
    finally:
        _dvc(project, "checkout", "--force", "propagate@cora")
    assert target.read_bytes() == original
    assert dvc.workspace_differences("cora", dvc.data_version("cora"), project) == ([], [])


def test_validate_refuses_data_rewritten_outside_dvc(project, inside, monkeypatch):
    """A folder consistent with its meta.json but not with dvc.lock is caught by `dvc status`."""
    from dgnn.data import DataError, propagate_stage
    from flows import data_tasks

    propagate_stage("cora", [1], feature_norm="none")
    try:
        with pytest.raises(DataError, match=r"data/cora/propagated: differ\(s\) from dvc.lock"):
            data_tasks.validate_data.fn("cora")
    finally:
        _dvc(project, "checkout", "--force", "propagate@cora")
    assert json.loads(_dvc(project, "status", "--json", *CORA).stdout) == {}


def test_validate_reuses_a_clean_dvc_verdict_only_for_the_same_outputs(project, inside, monkeypatch):
    """`dvc status` is skipped for outputs and dvc.lock it already cleared, and runs again (and
    refuses) once an output is rewritten consistently with its meta.json."""
    from dgnn.data import DataError, propagate_stage
    from adapters.dvc import repo as dvc
    from flows import data_tasks

    assert data_tasks.validate_data.fn("cora")["dvc"] == "matches dvc.lock"
    calls = []
    real = dvc.dvc_status
    monkeypatch.setattr(dvc, "dvc_status", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert data_tasks.validate_data.fn("cora")["dvc"] == "matches dvc.lock"
    assert calls == []
    propagate_stage("cora", [1], feature_norm="none")
    try:
        with pytest.raises(DataError, match=r"data/cora/propagated: differ\(s\) from dvc.lock"):
            data_tasks.validate_data.fn("cora")
        assert len(calls) == 1
    finally:
        _dvc(project, "checkout", "--force", "propagate@cora")
    assert data_tasks.validate_data.fn("cora")["dvc"] == "matches dvc.lock"  # the cleared state again
    assert len(calls) == 1


def test_tasks_run_the_dvc_stages(project, inside, monkeypatch):
    from adapters.dvc import repo as dvc
    from flows import data_tasks

    version = dvc.data_version("cora")
    lock = _outs((project / "dvc.lock").read_text())
    assert version == {"fetch": lock["fetch@cora"], "normalise": lock["normalise@cora"],
                       "propagate": lock["propagate@cora"], "data_version": lock["propagate@cora"]}
    fetched = data_tasks.fetch_data.fn("cora")
    assert fetched["tracked"] and fetched["dvc_md5"] == version["fetch"]
    assert data_tasks.normalise_data.fn("cora")["dvc_md5"] == version["normalise"]
    params = yaml.safe_load((project / "params.yaml").read_text())["datasets"]["cora"]["propagate"]
    result = data_tasks.propagate_data.fn("cora", params["orders"][:1], params["feature_norm"])
    assert result["tracked"] and result["dvc_md5"] == version["propagate"]
    assert result["orders"] == params["orders"]
    assert json.loads(_dvc(project, "status", "--json", *CORA).stdout) == {}
    assert dvc.data_version("not-in-params")["data_version"] == "untracked"


def test_lineage_of_a_tracked_run(project, inside, tmp_path, monkeypatch, capsys):
    """An MLflow run tagged like the pipeline's parent run: lineage prints it and compares."""
    import argparse

    from mlflow.tracking import MlflowClient

    from adapters.dvc import repo as dvc
    from cli import lineage

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("dgnn-cora-classify",
                                          artifact_location=(tmp_path / "artifacts").as_uri())
    version = dvc.data_version("cora")
    commit = _sh(["git", "rev-parse", "HEAD"], project, project.env).stdout.strip()
    tags = {"dataset": "cora", "task": "classify", "git_commit": commit,
            "data_version": version["data_version"], **{dvc.stage_tag(k): version[k] for k in dvc.STAGES}}
    run = client.create_run(experiment, tags=tags, run_name="parent")
    client.log_param(run.info.run_id, "train.feature_norm", "row")
    client.set_terminated(run.info.run_id)

    parser = argparse.ArgumentParser()
    lineage.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lineage", run.info.run_id])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    for value in (commit, version["fetch"], version["normalise"], version["propagate"], "train.feature_norm = row"):
        assert value in out
    assert "workspace     matches" in out

    target = project / "data" / "cora" / "adj" / "values.npy"
    original = target.read_bytes()
    target.write_bytes(original[:-4] + b"\1\2\3\4")
    try:
        args = parser.parse_args(["lineage", run.info.run_id, "--json"])
        assert args.handler(args) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["workspace"] == "differs"
        assert report["stages"] == {f"{k}@cora": version[k] for k in dvc.STAGES}
        assert any(d.startswith("data/cora/adj: modified") for d in report["differences"])
    finally:
        _dvc(project, "checkout", "--force", "normalise@cora")
    args = parser.parse_args(["lineage", "0123456789abcdef0123456789abcdef"])
    assert args.handler(args) == 2
    assert "error: cannot read the lineage" in capsys.readouterr().err

    for ref in (run.info.run_id[:8], "parent"):  # a short id as the UI shows it, or the run's name
        args = parser.parse_args(["lineage", ref, "--json"])
        assert args.handler(args) == 0 and json.loads(capsys.readouterr().out)["run_id"] == run.info.run_id
    client.create_run(experiment, run_name="parent")
    args = parser.parse_args(["lineage", "parent"])
    assert args.handler(args) == 2
    assert "'parent' names 2 runs" in capsys.readouterr().err


def _fast_config(path: Path) -> Path:
    """A short run (the data path is what these tests check): the flows tests' tiny config, FT_0 only."""
    path.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "bp_count": 0}}))
    return path


def test_pipeline_run_then_lineage(project):
    """`dgnn run` followed by `dgnn lineage <run id>`: the run's hashes equal dvc.lock."""
    env = {**project.env, "DGNN_PROJECT_DIR": str(project),
           "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"}
    _fast_config(project.parent / "fast.yaml")
    run = _sh([sys.executable, "-m", "cli.main", "run", "--dataset", "cora", "--task", "classify",
               "--config", str(project.parent / "fast.yaml"), "--device", "cpu", "--quiet", "--json"],
              project, env)
    summary = json.loads(run.stdout)
    run_id = summary.get("mlflow_run_id") or summary["run_id"]
    lineage = _sh([sys.executable, "-m", "cli.main", "lineage", run_id, "--json"], project, env, check=False)
    report = json.loads(lineage.stdout)
    lock = _outs((project / "dvc.lock").read_text())
    assert report["stages"] == lock
    assert report["data_version"] == lock["propagate@cora"] == summary["data_version"]
    assert report["workspace"] == "matches" and lineage.returncode == 0, report["differences"]
    from mlflow.tracking import MlflowClient

    [given] = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"]).get_run(run_id).inputs.dataset_inputs
    assert given.dataset.name == "cora" and given.dataset.digest == lock["propagate@cora"]  # DVC's hash


def test_data_version_is_untracked_for_another_data_folder(project, inside, tmp_path, monkeypatch):
    """dvc.lock describes <project>/data only: data read elsewhere has no DVC version."""
    from adapters.dvc import repo as dvc

    assert dvc.data_version("cora")["data_version"] != "untracked"
    monkeypatch.setenv("DGNN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert set(dvc.data_version("cora").values()) == {"untracked"}


def test_run_on_another_data_folder_is_untracked_and_lineage_differs(project):
    """`dgnn run` with DGNN_DATA_DIR outside the DVC workspace: tagged untracked (not dvc.lock's
    hashes), and `dgnn lineage` finds its content hash differs from the workspace's data."""
    from adapters.dvc.lineage import content_difference

    elsewhere = project.parent / "elsewhere-data"
    env = {**project.env, "DGNN_PROJECT_DIR": str(project), "DGNN_DATA_DIR": str(elsewhere),
           "MLFLOW_TRACKING_URI": f"sqlite:///{project.parent / 'elsewhere-mlflow.db'}"}
    _fast_config(project.parent / "fast-elsewhere.yaml")
    try:
        run = _sh([sys.executable, "-m", "cli.main", "run", "--dataset", "cora", "--config",
                   str(project.parent / "fast-elsewhere.yaml"), "--device", "cpu", "--quiet", "--json"],
                  project, env)
        summary = json.loads(run.stdout)
        assert "NOT versioned by DVC" in run.stderr
        assert summary["data_version"] == "untracked"
        from mlflow.tracking import MlflowClient

        tags = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"]).get_run(summary["mlflow_run_id"]).data.tags
        assert tags["data_tracked"] == "false" and tags["data_version"] == "untracked"
        assert {tags[f"dvc.{stage}"] for stage in ("fetch", "normalise", "propagate")} == {"untracked"}
        workspace = json.loads((project / "data" / "cora" / "propagated" / "meta.json").read_text())
        assert tags["data_content_hash"] != workspace["content_hash"]  # other orders than params.yaml's

        lineage = _sh([sys.executable, "-m", "cli.main", "lineage", summary["mlflow_run_id"], "--json"],
                      project, env, check=False)
        report = json.loads(lineage.stdout)
        assert lineage.returncode == 1 and report["workspace"] == "differs"
        assert report["data_content_hash"] == summary["data_content_hash"]
        assert content_difference("cora", tags["data_content_hash"], project) in report["differences"]
        assert any(d.startswith("data/cora/propagated: content hash") for d in report["differences"])
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


PAPERS = ["fetch@papers", "normalise@papers", "propagate@papers"]


def _dgnn(project: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return _sh([sys.executable, "-m", "cli.main", *args], project, env or project.env, check)


def test_imported_graph_is_versioned_like_a_catalogue_dataset(project, cora_user_files):
    """`dgnn import` in the workspace: the files are copied to imports/papers/ and tracked, the
    stages fetch -> normalise -> propagate@papers are in dvc.lock, a run records their hash, a
    re-import with changed files reruns them, and another clone rebuilds them from `dvc pull`."""
    env = {**project.env, "DGNN_PROJECT_DIR": str(project),
           "MLFLOW_TRACKING_URI": f"sqlite:///{project.parent / 'import-mlflow.db'}"}
    saved = {name: (project / name).read_text() for name in ("params.yaml", "dvc.lock")}
    files = ["--edges", str(cora_user_files["edges"]), "--nodes", str(cora_user_files["nodes"])]
    try:
        imported = _dgnn(project, "import", "papers", *files, env=env)
        assert "papers is versioned by DVC" in imported.stderr
        lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
        tracked = yaml.safe_load((project / "imports" / "papers.dvc").read_text())["outs"][0]["md5"]
        assert {d["path"]: d["md5"] for d in lock["fetch@papers"]["deps"]}["imports/papers"] == tracked
        assert sorted(p.name for p in (project / "imports" / "papers").iterdir()) == ["edges.csv", "nodes.csv"]
        assert all(lock[stage]["outs"][0]["md5"].endswith(".dir") for stage in PAPERS)
        assert json.loads(_dvc(project, "status", "--json", *PAPERS).stdout) == {}

        _fast_config(project.parent / "fast-papers.yaml")
        run = _dgnn(project, "run", "--dataset", "papers", "--config", str(project.parent / "fast-papers.yaml"),
                    "--device", "cpu", "--quiet", "--json", env=env)
        assert "NOT versioned" not in run.stderr
        summary = json.loads(run.stdout)
        assert summary["data_version"] == lock["propagate@papers"]["outs"][0]["md5"]
        lineage = _dgnn(project, "lineage", summary["mlflow_run_id"], "--json", env=env, check=False)
        assert json.loads(lineage.stdout)["workspace"] == "matches" and lineage.returncode == 0

        changed = project.parent / "nodes-changed.csv"
        changed.write_text(cora_user_files["nodes"].read_text().replace(",0.0,", ",1.0,", 1))  # one feature
        _dgnn(project, "import", "papers", "--edges", str(cora_user_files["edges"]), "--nodes", str(changed), env=env)
        relocked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
        assert relocked["fetch@papers"]["outs"][0]["md5"] != lock["fetch@papers"]["outs"][0]["md5"]
        assert json.loads(_dvc(project, "status", "--json", *PAPERS).stdout) == {}
        assert _dgnn(project, "lineage", summary["mlflow_run_id"], env=env, check=False).returncode == 1

        # Another machine: a clone with the files to commit gets the sources from the remote and
        # rebuilds the graph with the recorded hashes.
        _dvc(project, "push", "imports/papers.dvc")
        clone = project.parent / "clone"
        _sh(["git", "clone", "-q", str(project), str(clone)], project.parent, project.env)
        (clone / "imports").mkdir()
        for name in ("params.yaml", "dvc.lock", "imports/papers.dvc", "imports/.gitignore"):
            shutil.copy2(project / name, clone / name)
        _sh([sys.executable, "-m", "dvc", "pull", "imports/papers.dvc"], clone, project.env)
        _sh([sys.executable, "-m", "dvc", "repro", "propagate@papers"], clone, project.env)
        assert _outs((clone / "dvc.lock").read_text(), PAPERS) == _outs((project / "dvc.lock").read_text(), PAPERS)
    finally:
        for name, text in saved.items():
            (project / name).write_text(text)
        for folder in ("imports", "data/papers", "../clone"):
            shutil.rmtree(project / folder, ignore_errors=True)


def test_import_outside_a_dvc_workspace_is_kept_unversioned(project, inside, cora_user_files, tmp_path,
                                                             monkeypatch, capsys):
    """Outside a DVC workspace the graph is imported as before and the note says why it is not
    versioned; in the workspace a catalogue name is refused before anything is written."""
    from dgnn.data import DataError
    from adapters.dvc import repo as dvc
    from adapters.dvc.imports import import_command

    with pytest.raises(DataError, match="'acm' is the name of a catalogue or synthetic dataset"):
        import_command("acm", cora_user_files["edges"], cora_user_files["nodes"])
    assert not (project / "imports").exists() and "acm" not in (project / "params.yaml").read_text()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DGNN_PROJECT_DIR", str(tmp_path))
    result = import_command("papers", cora_user_files["edges"], cora_user_files["nodes"])
    assert result.nodes == 2708 and (tmp_path / "data" / "papers" / "graph").is_dir()
    assert "is not a DVC workspace of this project (no .dvc, dvc.yaml, params.yaml)" in capsys.readouterr().err
    assert dvc.data_version("papers", tmp_path)["data_version"] == "untracked"


def _served(project: Path, args: list[str], env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """``dgnn serve ARGS`` in the project, once its deployment exists: (the process, its Prefect API)."""
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", *args], cwd=project, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while "from any shell: " not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    return proc, re.search(r"Prefect API (\S+)", log.read_text()).group(1)


def _deployment_run(api: str, name: str):
    """A run of deployment ``name`` started now, once it has ended (its final Prefect flow run)."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}):
        return run_deployment(name, timeout=600)


def test_a_served_deployment_retrains_only_when_the_source_changed(project, cora_user_files):
    """`dgnn import` remembers where the files came from; every run, by hand or of a served
    deployment, checks them first, over four data versions: v1 -> trained and registered; v1 again
    -> no retraining, the run that trained it named; v2 (new nodes and edges) -> a new data version,
    trained, the drift logged, the champion re-scored on v2 and the alias moved only if the new
    model wins there; v3 (a broken file) -> refused with one line, nothing of v2 changed. `dgnn
    lineage` names each run's data version."""
    from mlflow.tracking import MlflowClient

    from adapters.prefect.server import stop_process_group

    uri = f"sqlite:///{project.parent / 'source-mlflow.db'}"
    env = {**project.env, "DGNN_PROJECT_DIR": str(project), "MLFLOW_TRACKING_URI": uri}
    env = settings.without_tool_settings(env, ("PREFECT_",)) | {
        "PREFECT_HOME": str(project.parent / "serve-prefect")}
    saved = {name: (project / name).read_text() for name in ("params.yaml", "dvc.lock")}
    source = project.parent / "evo-source"
    source.mkdir()
    edges, nodes = (Path(shutil.copy2(cora_user_files[k], source / f"{k}.csv")) for k in ("edges", "nodes"))
    fast = str(_fast_config(project.parent / "fast-evo.yaml"))
    run = ["run", "--dataset", "evo", "--config", fast, "--device", "cpu", "--quiet", "--json"]
    served, log = None, project.parent / "serve-evo.log"
    try:
        _dgnn(project, "import", "evo", "--edges", str(edges), "--nodes", str(nodes), env=env)
        assert json.loads((project / "imports" / "evo.source.json").read_text()) == {
            "edges": str(edges.resolve()), "nodes": str(nodes.resolve())}
        served, api = _served(project, ["--dataset", "evo", "--config", fast, "--device", "cpu",
                                        "--cron", "0 0 1 1 *", "--prefect-port", "0"], env, log)
        deployment = "train-pipeline/dgnn-evo-classify"
        assert _deployment_run(api, deployment).state.is_completed()  # v1
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("dgnn-evo-classify").experiment_id
        [first] = client.search_runs([experiment], "tags.run_label != ''")
        first = {"mlflow_run_id": first.info.run_id, "data_version": first.data.tags["data_version"]}
        assert first["data_version"] == _outs((project / "dvc.lock").read_text(), ["propagate@evo"])["propagate@evo"]
        assert str(client.get_model_version_by_alias("dgnn-evo-classify", "champion").version) == "1"

        assert _deployment_run(api, deployment).state.is_completed()  # v1 again
        assert f"({first['mlflow_run_id']}): not training again" in log.read_text()
        again = json.loads(_dgnn(project, *run, env={**env, "PREFECT_API_URL": api}).stdout)  # and by hand
        assert again["skipped"] and again["mlflow_run_id"] == first["mlflow_run_id"], again
        assert again["data_version"] == first["data_version"] and "not training again" in again["message"]
        assert len(client.search_runs([experiment], "tags.run_label != ''")) == 1

        ids = [f"paper-{k}" for k in range(12)]  # v2: a dozen new papers, each citing an existing one
        with open(nodes, "a") as f:
            f.writelines(f"new-{k}," + ",".join(["0.0"] * 32) + f",{k % 7},\n" for k in range(12))
        with open(edges, "a") as f:
            f.writelines(f"new-{k},{ids[k]}\n" for k in range(12))
        assert _deployment_run(api, deployment).state.is_completed()
        [second] = client.search_runs([experiment], f"tags.run_label != '' and tags.data_version != "
                                                    f"'{first['data_version']}'")
        tags = second.data.tags
        lock = _outs((project / "dvc.lock").read_text(), ["propagate@evo"])["propagate@evo"]
        assert tags["data_version"] == lock and tags["source_state"] == "changed"
        drift = json.loads(Path(client.download_artifacts(second.info.run_id, "drift.json",
                                                          str(project.parent))).read_text())
        assert drift["nodes"] == {"before": 2708, "after": 2720, "added": 12, "removed": 0}
        assert drift["edges"]["added"] == 12 and drift["edges"]["removed"] == 0 and drift["labels_changed"] == 0
        name = "dgnn-evo-classify"
        challenger = client.get_model_version(name, tags["registered_version"])
        assert "re-scored on this data version" in tags["registry_decision"], tags["registry_decision"]
        moved = float(challenger.tags["val_criterion"]) > float(tags["rescored_champion_criterion"])
        alias = str(client.get_model_version_by_alias(name, "champion").version)
        assert alias == (str(challenger.version) if moved else "1") and tags["champion"] == str(moved).lower()

        before = {name: (project / name).read_bytes() for name in ("dvc.lock", "imports/evo/edges.csv",
                                                                   "imports/evo/nodes.csv", "imports/evo.dvc")}
        with open(edges, "a") as f:  # v3: an edge to a node that does not exist
            f.write("new-1,nobody\n")
        broken = _deployment_run(api, deployment)
        assert broken.state.is_failed() and "\n" not in broken.state.message.strip(), broken.state.message
        assert "the changed source was refused, the previous data version stays" in broken.state.message
        assert {name: (project / name).read_bytes() for name in before} == before
        assert json.loads(_dvc(project, "status", "--json", "propagate@evo").stdout) == {}
        assert len(client.search_runs([experiment], "tags.run_label != ''")) == 2

        for run_id, version, workspace in ((first["mlflow_run_id"], first["data_version"], "differs"),
                                           (second.info.run_id, lock, "matches")):
            lineage = json.loads(_dgnn(project, "lineage", run_id, "--json", env=env, check=False).stdout)
            assert (lineage["data_version"], lineage["workspace"]) == (version, workspace), lineage
    finally:
        if served is not None:
            stop_process_group(served, timeout=40)
        for name, text in saved.items():
            (project / name).write_text(text)
        for folder in ("imports", "data/evo"):
            shutil.rmtree(project / folder, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)


def test_train_stage_metrics_params_and_experiments(project):
    """The train stage in dvc.yaml: `dvc repro train` writes metrics/train.json (`dvc metrics show`);
    its config file is a params file, so `dvc exp run -S` tries a changed config, `dvc params diff`
    names the change and `dvc exp show` lists the experiment's metrics beside the baseline's."""
    config = project / "configs" / "cora-classify.yaml"
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    head = _sh(["git", "rev-parse", "HEAD"], project, project.env).stdout.strip()
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "bp_count": 0}}))  # short: 3 seeds twice
    _sh([*git, "commit", "-qam", "a fast config for the train stage"], project, project.env)
    try:
        assert "Running stage 'train'" in _dvc(project, "repro", "train").stdout
        shown = json.loads(_dvc(project, "metrics", "show", "--json").stdout)
        metrics = shown[""]["data"]["metrics/train.json"]["data"]  # "": the workspace
        assert 0.3 < metrics["test_acc_mean"] <= 1 and metrics["val_acc_std"] >= 0, metrics
        assert json.loads((project / "metrics" / "train.json").read_text()) == metrics

        _dvc(project, "exp", "run", "-n", "no-row-norm", "-S", "configs/cora-classify.yaml:train.feature_norm=none")
        diff = json.loads(_dvc(project, "params", "diff", "--json").stdout)
        assert diff["configs/cora-classify.yaml"]["train.feature_norm"] == {"old": "row", "new": "none"}
        rows = {row["name"]: row for row in json.loads(_dvc(project, "exp", "show", "--json").stdout)
                for row in [row, *[e for e in row.get("experiments") or []]] if row.get("name")}
        experiment = rows["no-row-norm"]["revs"][0]["data"]
        assert experiment["params"]["configs/cora-classify.yaml"]["data"]["train"]["feature_norm"] == "none"
        assert "test_acc_mean" in experiment["metrics"]["metrics/train.json"]["data"]
    finally:
        _sh(["git", "reset", "-q", "--hard", head], project, project.env)
