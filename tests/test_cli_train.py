"""`dgnn train`: one JSON object on success, one clear line and a non-zero exit on bad input."""

import json
import subprocess
import sys

import pytest

from cli.main import main as train_main


def _dgnn(*args, env):
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, env=env)


@pytest.fixture
def env(tmp_data_dir, shared_datasets, monkeypatch):
    import os

    monkeypatch.setenv("DGNN_DATA_DIR", str(tmp_data_dir))
    monkeypatch.setenv("DGNN_DATA_MIRROR", str(shared_datasets))
    return dict(os.environ)


TINY = """
dataset: cora
train:
  task: {task}
  bp_count: 1
  modules:
    - {{width: 16, order: 2, steps: 10, batch_size: 140, lr: 0.01}}
    - {{width: 8, order: 1, steps: 10, batch_size: 140, lr: 0.01}}
"""


@pytest.mark.parametrize("task,keys", [
    ("classify", ["test_acc_mean", "test_acc_std", "val_acc_mean", "macro_f1_mean", "train_seconds_mean"]),
    ("cluster", ["acc_mean", "nmi_mean", "ari_mean", "train_seconds_mean"]),
])
def test_train_prints_summary_json(env, tmp_path, task, keys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(task=task))
    out = _dgnn("train", "--dataset", "cora", "--task", task, "--config", str(config), "--seeds", "0-1",
                "--json", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["dataset"] == "cora" and summary["task"] == task and summary["seeds"] == [0, 1]
    for key in keys:
        assert 0 <= summary[key] < 1e4
    assert "[seed 1]" in out.stderr  # progress goes to stderr


@pytest.mark.parametrize("args,message", [
    (["--dataset", "no-such-graph"], "unknown dataset"),
    (["--seeds", "a-b"], "bad seed list"),
    (["--seeds", "5-2,3"], "range 5-2 is reversed"),
    (["--seeds", "1-"], "bad seed list '1-'"),
    (["--seeds", "1" * 20], "is out of range, use 0..4294967295"),
    (["--device", "cuda:7"], "CUDA is not available"),
    (["--task", "cluster", "--config", "configs/default-classify.yaml"], "is a 'classify' config"),
    (["--config", "no/such/file.yaml"], "no/such/file.yaml"),
])
def test_bad_requests_fail_with_one_line(env, args, message, capsys):
    if "cuda" in args[-1]:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    assert train_main(["train", "--quiet", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


@pytest.mark.parametrize("text,message", [
    ("train:\n  modules: []\n", "train.modules"),
    ("train:\n  modules: [{width: 0}]\n", "train.modules.0.width"),
    ("train:\n  modules: [{width: 8, colour: red}]\n", "colour"),
    (": [\n", "not valid YAML"),
    ("train:\n  eta: .inf\n  modules: [{width: 8}]\n", "train.eta: Input should be a finite number"),
    ("train:\n  modules: [{width: 8, lr: .nan}]\n", "train.modules.0.lr: Input should be a finite number"),
])
def test_bad_config_names_the_field(env, tmp_path, text, message, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert train_main(["train", "--quiet", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_non_finite_loss_stops_its_step(env, tmp_path, capsys):
    config = tmp_path / "huge-eta.yaml"
    config.write_text(TINY.format(task="classify").replace("bp_count: 1", "bp_count: 1\n  eta: 1.0e+38"))
    assert train_main(["train", "--quiet", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: BT1-m1: the loss of module 1 is inf at SGD step 1; lower that module's lr (or eta) in the config"


@pytest.mark.parametrize("args,message", [
    (["run", "--dataset", "nope"], "error: unknown dataset 'nope': use one of cora"),
    (["run", "--config", "nothere.yaml"], "error: config file nothere.yaml not found: give the path"),
    (["train", "--config", "nothere.yaml"], "error: config file nothere.yaml not found: give the path"),
])
def test_a_bad_dataset_or_config_fails_before_any_server_starts(env, tmp_path, args, message):
    """One line and status 2, and no Prefect server nor MLflow store was started for it."""
    home = tmp_path / "prefect-home"
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env | {"PREFECT_HOME": str(home), "PREFECT_API_URL": "",
                                     "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert not home.exists() and not (tmp_path / "mlflow.db").exists()


def test_the_parser_tree_loads_neither_torch_nor_the_tools():
    """`dgnn --help` and argument errors answer without torch, Prefect, MLflow or pandas (they took
    5.5 s to import); the handlers import what they use."""
    probe = ("import sys; from cli.main import build_parser; build_parser().format_help(); "
             "print(sorted(m for m in ('torch', 'prefect', 'mlflow', 'pandas', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
