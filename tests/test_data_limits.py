"""Input that no file system, memory or model can take: refused before anything is written or
started, with one line (exit 2) saying what and where; and a ``dgnn import`` that is all or nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cli.main import main
from dgnn.machine import available_memory
from flows_conftest import TINY, as_in_a_terminal  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def _refused(argv: list[str], capsys) -> str:
    """Run the CLI in this process: exit 2 and exactly one line on stderr, which is returned."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def files(cora_user_files, tmp_path) -> dict:
    return {k: Path(shutil.copy(cora_user_files[k], tmp_path / f"{k}.csv")) for k in ("edges", "nodes")}


def _import(files: dict, name: str = "papers") -> list[str]:
    return ["import", name, "--edges", str(files["edges"]), "--nodes", str(files["nodes"])]


# -- names and sizes ------------------------------------------------------------------------------


def test_a_300_character_dataset_name_is_refused_and_nothing_is_created(files, tmp_data_dir, capsys):
    name = "a" * 300
    for argv in (_import(files, name), ["train", "--dataset", name]):
        assert "invalid dataset name 'aaaaaaaaaaaaaaaaaaaa'... (300 characters): use at most 100" in \
            _refused(argv, capsys)
    assert not any(tmp_data_dir.iterdir())


def test_a_sparse_2_gb_nodes_file_is_refused_unread(files, tmp_data_dir, capsys):
    with open(files["nodes"], "wb") as f:
        f.truncate(2 << 30)  # holes only: no byte of it is on disk
    assert f"{files['nodes']}: no line break in its first 16 MB: not a CSV table" in _refused(_import(files), capsys)
    with open(files["nodes"], "wb") as f:
        f.write(b"node_id,f0,label\n")
        f.truncate(1 << 30)
    assert f"{files['nodes']}: holds NUL bytes (a binary or sparse file), not CSV text" in \
        _refused(_import(files), capsys)
    assert not any(tmp_data_dir.iterdir())


def test_a_nodes_file_larger_than_memory_allows_is_refused_before_reading(files, tmp_data_dir, capsys):
    size = available_memory() // 4  # a sparse file: it takes no disk
    with open(files["nodes"], "wb") as f:
        f.write(b"node_id,f0,label\n")
        f.truncate(size)
    err = _refused(_import(files), capsys)
    assert f"{files['nodes']}: {size / 1e9:.1f} GB; reading it takes about" in err and "GB are available" in err
    assert not any(tmp_data_dir.iterdir())


def _write_wide(path: Path, rows: int, columns: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write("node_id," + ",".join(f"f{j}" for j in range(columns)) + ",label\n")
        for i in range(rows):
            f.write(f"n{i}," + ",".join(np.where(rng.random(columns) < 0.01, "1", "0")) + f",{i % 3}\n")


def _write_ring(path: Path, rows: int) -> None:
    pd.DataFrame({"src": [f"n{i}" for i in range(rows)], "dst": [f"n{(i + 1) % rows}" for i in range(rows)]}) \
        .to_csv(path, index=False)


def test_a_wide_nodes_file_imports_in_about_the_time_pandas_reads_it(tmp_path, tmp_data_dir, capsys):
    """20,000 feature columns: checked column by column the import took 30 times as long as
    reading the file (100,000 columns: over 200 s); the columns read as finite numbers are
    checked at once."""
    nodes, edges = tmp_path / "wide.csv", tmp_path / "edges.csv"
    _write_wide(nodes, 12, 20_000)
    _write_ring(edges, 12)
    started = time.perf_counter()
    pd.read_csv(nodes, dtype={"node_id": "string"})
    reading = time.perf_counter() - started
    started = time.perf_counter()
    assert main(["import", "wide", "--edges", str(edges), "--nodes", str(nodes)]) == 0, capsys.readouterr().err
    importing = time.perf_counter() - started
    assert importing < 10 * reading + 5, (importing, reading)


# -- labels ---------------------------------------------------------------------------------------


def test_one_text_label_among_class_numbers_is_named_not_made_a_class(files, tmp_data_dir, capsys):
    nodes = pd.read_csv(files["nodes"], dtype=str, keep_default_na=False)
    nodes.loc[17, "label"] = "abc"
    nodes.to_csv(files["nodes"], index=False)
    err = _refused(_import(files), capsys)
    assert "nodes.csv: column 'label' mixes class numbers and names: 1 row(s) hold text, first rows 17 ('abc')" in err
    assert not any(tmp_data_dir.iterdir())


def test_a_train_split_missing_classes_is_refused_naming_them(files, tmp_data_dir, capsys):
    nodes = pd.read_csv(files["nodes"])
    nodes.loc[(nodes["split"] == "train") & (nodes["label"] != 0), "split"] = "val"
    nodes.to_csv(files["nodes"], index=False)
    err = _refused(_import(files), capsys)
    assert ("nodes.csv split: the train split holds nodes of 1 of the 7 labelled classes; classes with none: "
            "1, 2, 3, 4, 5, 6; put nodes of every class in the train split") in err
    assert not any(tmp_data_dir.iterdir())


# -- configs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, limit", [
    ("width", 10**9, "65536"), ("order", 10**6, "64"), ("bp_count", 10**9, "100")])
def test_config_values_no_one_means_are_refused(tmp_path, capsys, field, value, limit, shared_datasets):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    where = config["train"] if field == "bp_count" else config["train"]["modules"][0]
    where[field] = value
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    err = _refused(["train", "--dataset", "cora", "--config", str(tmp_path / "c.yaml")], capsys)
    assert f"{field}: Input should be less than or equal to {limit}" in err


def test_a_config_that_needs_more_memory_than_there_is_is_refused_before_any_server(tmp_path, capsys, monkeypatch):
    """Two 65536-wide modules: module 2's U alone is 17 GB (four times that with its gradient and
    Adam's moments)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DGNN_PROJECT_DIR", str(tmp_path))
    config = yaml.safe_load(yaml.safe_dump(TINY))
    for module in config["train"]["modules"]:
        module["width"] = 65536
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(config))
    for command in ("train", "run"):
        err = _refused([command, "--dataset", "cora", "--config", str(tmp_path / "big.yaml")], capsys)
        assert "error: training this config on cora needs about" in err and "GB are available: lower the width" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]  # no store, no Prefect home


# -- an import is all or nothing ------------------------------------------------------------------


def _workspace(root: Path) -> Path:
    """A DVC workspace of the project: its stages, parameters and code, no stage built."""
    root.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, root / name)
    (root / "dgnn").symlink_to(ROOT / "dgnn")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
    return root


def _state(project: Path) -> dict:
    """Every file of the workspace but git's and DVC's own (its cache keeps what it was given)."""
    inner = (project / ".git", project / ".dvc" / "tmp", project / ".dvc" / "cache")
    return {str(p.relative_to(project)): p.read_bytes() if p.is_file() else "dir" for p in sorted(project.rglob("*"))
            if not any(p == folder or folder in p.parents for folder in inner)}


def test_an_interrupted_import_leaves_the_workspace_as_it_was(tmp_path, cora_user_files):
    project = _workspace(tmp_path / "project")
    before = _state(project)
    env = {k: v for k, v in os.environ.items() if k != "DGNN_DATA_DIR"} | {"DGNN_PROJECT_DIR": str(project)}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "import", "papers", "--edges",
                             str(cora_user_files["edges"]), "--nodes", str(cora_user_files["nodes"])],
                            cwd=project, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)
    tracked = project / "imports" / "papers.dvc"  # written by `dvc add`, before `dvc repro` builds the stages
    deadline = time.monotonic() + 180
    while not tracked.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tracked.exists(), proc.communicate(timeout=60)[1][-3000:]
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=180)[1]
    assert proc.returncode == 130, err[-3000:]
    assert err.splitlines()[-1] == ("interrupted by SIGINT: the import was undone: data/, params.yaml, dvc.lock and "
                                    "imports/ are as they were; rerun the same command"), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert _state(project) == before
