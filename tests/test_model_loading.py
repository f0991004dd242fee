"""``dgnn predict`` runs only this dgnn's own code: a model folder whose code was changed, or whose
payload is not plain tensors, is refused with one line, and nothing in it runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from cli.main import main
from flows_conftest import TINY  # tests/ is on sys.path


class _Planted:
    """Unpickling it creates the folder ``marker``: proof that the payload was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A packaged model of a small synthetic graph, as a pipeline run logs it."""
    from dgnn.config import TrainConfig
    from dgnn.data.synthetic import csbm
    from dgnn.trainer import DecoupledTrainer
    from adapters.mlflow.model import model_payload, save_packaged_model

    graph = csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0)
    config = TrainConfig.model_validate({**TINY["train"], "feature_norm": "none"})
    trainer = DecoupledTrainer(graph, config, seed=0)
    trainer.fit()
    return save_packaged_model(model_payload(trainer, config, "synthetic-csbm-300"), tmp_path_factory.mktemp("m") / "model")


@pytest.fixture
def predict(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    def run(folder: Path) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(["predict", "--model-uri", str(folder), "--nodes", "0,5,9"])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def _copy(model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model, tmp_path / "copied-model"))


def test_a_model_folder_with_dgnns_own_code_predicts(model, predict):
    status, out, err = predict(model)
    assert status == 0, err
    assert out.splitlines()[0] == "node,prediction,probability" and len(out.splitlines()) == 4


def test_changed_model_code_is_refused_and_never_runs(model, predict, tmp_path):
    copied = _copy(model, tmp_path)
    marker = tmp_path / "ran"
    with open(copied / "packaged_model.py", "a") as f:
        f.write(f"\nimport os\nos.mkdir({str(marker)!r})\n")
    status, out, err = predict(copied)
    assert (status, out) == (1, "")
    assert err == (f"error: predict failed: {copied}: refusing to run it: its code (packaged_model.py) is not this "
                   "dgnn's packaged_model.py (changed, or logged by another version); log a new model with "
                   "`dgnn run`\n")
    assert not marker.exists()


def test_payload_that_is_not_plain_tensors_is_refused_without_torchs_hint(model, predict, tmp_path):
    copied = _copy(model, tmp_path)
    marker = tmp_path / "unpickled"
    payload = next((copied / "artifacts").glob("*.pt"))
    torch.save({"format": 2, "modules": [_Planted(marker)]}, payload)
    status, _, err = predict(copied)
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: predict failed: {payload}: refusing to load it: not plain tensors") and \
        err.endswith("log a new model with `dgnn run`\n"), err
    assert "weights_only" not in err and not marker.exists()
