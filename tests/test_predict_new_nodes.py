"""``dgnn predict --edges E --nodes N``: a logged classifier predicts every node of a graph it was
not trained on (issue 22). On Cora with a tenth of the nodes absent from training, it predicts them
from their features and edges about as well as a model that saw them while training."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cli.main import main
from flows_conftest import TINY  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def _trained_model(graph, config: dict, folder: Path) -> tuple[Path, object]:
    """(model folder, trainer) of ``config`` fitted on ``graph`` with seed 0, packaged as a run logs it."""
    from adapters.mlflow.model import model_payload, save_packaged_model
    from dgnn.config import TrainConfig
    from dgnn.trainer import DecoupledTrainer

    train_config = TrainConfig.model_validate(config)
    trainer = DecoupledTrainer(graph, train_config, seed=0)
    trainer.fit()
    folder.mkdir(exist_ok=True)
    return save_packaged_model(model_payload(trainer, train_config, graph.name), folder / "model"), trainer


@pytest.fixture
def predict(tmp_path, monkeypatch, capsys):
    """``dgnn predict`` in-process: (status, the predictions frame or None, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    def run(*args) -> tuple[int, pd.DataFrame | None, str]:
        capsys.readouterr()
        status = main(["predict", *map(str, args)])
        out, err = capsys.readouterr()
        return status, pd.read_csv(io.StringIO(out), dtype={"node_id": str}) if out else None, err

    return run


@pytest.fixture(scope="module")
def named_model(cora_user_files, tmp_path_factory):
    """A tiny classifier of the imported Cora files whose labels are class names."""
    from dgnn.data.user_import import read_user_graph

    graph = read_user_graph("cora-named", cora_user_files["edges"], cora_user_files["named_nodes"])
    folder, _ = _trained_model(graph, TINY["train"], tmp_path_factory.mktemp("named"))
    return folder


def test_the_training_graph_as_files_gets_the_stored_predictions(named_model, cora_user_files, predict, tmp_path):
    """Given as files, the graph it was trained on is predicted exactly as by node id; columns are
    matched by name and class names by the model's own numbering, whatever their order in the file."""
    status, by_id, err = predict("--model", named_model, "--nodes", ",".join(map(str, range(2708))))
    assert status == 0, err
    nodes = pd.read_csv(cora_user_files["named_nodes"], dtype={"node_id": str})
    shuffled = nodes[["label", *reversed([c for c in nodes if c.startswith("f")]), "node_id"]]
    shuffled = shuffled[shuffled["label"].isin(["topic-3", "topic-5"])]  # fewer names than the model knows
    shuffled = pd.concat([shuffled, nodes.loc[~nodes.index.isin(shuffled.index)].drop(columns=["label", "split"])])
    path = tmp_path / "shuffled.csv"
    shuffled.to_csv(path, index=False)
    status, new, err = predict("--model", named_model, "--edges", cora_user_files["edges"], "--nodes", path)
    assert status == 0, err
    assert list(new.columns) == ["node_id", "prediction", "probability", "label"]
    new = new.set_index("node_id").loc[nodes["node_id"]]
    assert (new["prediction"].to_numpy() == by_id["prediction"].to_numpy()).all()
    assert np.allclose(new["probability"].to_numpy(), by_id["probability"].to_numpy(), atol=1e-6)
    assert (new["label"].to_numpy() == by_id["label"].to_numpy()).all()


def test_a_graph_that_does_not_fit_the_model_is_refused_in_one_line(named_model, cora_user_files, predict, tmp_path):
    nodes = pd.read_csv(cora_user_files["named_nodes"], dtype={"node_id": str})
    cases = {
        "lacks": nodes.drop(columns=["f7"]),
        "not classes of the model": nodes.assign(label=nodes["label"].replace("topic-2", "topic-9")),
    }
    for words, table in cases.items():
        path = tmp_path / "nodes.csv"
        table.to_csv(path, index=False)
        status, out, err = predict("--model", named_model, "--edges", cora_user_files["edges"], "--nodes", path)
        assert (status, out) == (2, None) and err.count("\n") == 1 and words in err, err
    broken = tmp_path / "edges.csv"
    broken.write_text("src,dst\npaper-1,nobody\n")
    status, _, err = predict("--model", named_model, "--edges", broken, "--nodes", cora_user_files["named_nodes"])
    assert status == 2 and "nobody" in err, err
    status, _, err = predict("--model", named_model, "--edges", broken, "--nodes-file", broken)
    assert status == 2 and err.count("\n") == 1 and "--edges needs --nodes" in err, err


def _write(graph, rows: np.ndarray, edges: pd.DataFrame, labelled: np.ndarray, folder: Path, split=None) -> tuple:
    """(edges file, nodes file) of ``graph``'s nodes ``rows`` (ids ``p<k>``), the labels of ``labelled`` only."""
    ids = np.array([f"p{k}" for k in range(graph.num_nodes)])
    nodes = pd.DataFrame(graph.x[rows].numpy(), columns=[f"f{i}" for i in range(graph.num_features)])
    nodes.insert(0, "node_id", ids[rows])
    y = np.where(labelled[rows], graph.y.numpy()[rows], -1)
    nodes["label"] = pd.array(np.where(y >= 0, y, None), dtype="Int64")
    if split is not None:
        nodes["split"] = pd.Series(split[rows]).replace("", None)
    inside = edges["src"].isin(rows) & edges["dst"].isin(rows)
    folder.mkdir()
    nodes.to_parquet(folder / "nodes.parquet")
    edges[inside].map(lambda k: ids[k]).to_parquet(folder / "edges.parquet")
    return folder / "edges.parquet", folder / "nodes.parquet"


def test_nodes_absent_from_training_are_predicted_about_as_well_as_transductively(shared_datasets, predict,
                                                                                   tmp_path):
    """A tenth of Cora's nodes (drawn from its test split, seed 0) is cut out of the graph with its
    edges; the shipped Cora config trains on the rest. ``dgnn predict`` on the whole graph (only the
    training nodes' labels given) then classifies the cut nodes within 3 points of the same config
    trained on the whole graph, on the same nodes."""
    from dgnn.data.planetoid import read_planetoid

    graph = read_planetoid(shared_datasets / "planetoid" / "Cora" / "raw", "cora")
    n, y = graph.num_nodes, graph.y.numpy()
    test = graph.test_mask.nonzero().flatten().numpy()
    held = np.sort(np.random.default_rng(0).choice(test, size=n // 10, replace=False))
    kept = np.setdiff1d(np.arange(n), held)
    src, dst = graph.edge_index.numpy()
    edges = pd.DataFrame({"src": src[src < dst], "dst": dst[src < dst]})
    split = np.select([graph.train_mask, graph.val_mask, graph.test_mask], ["train", "val", "test"], "")
    train_files = _write(graph, kept, edges, np.ones(n, bool), tmp_path / "train", split)
    full_files = _write(graph, np.arange(n), edges, graph.train_mask.numpy(), tmp_path / "full")

    from dgnn.data.user_import import read_user_graph

    config = yaml.safe_load((ROOT / "configs" / "cora-classify.yaml").read_text())["train"]
    folder, _ = _trained_model(read_user_graph("cora-inductive", *train_files), config, tmp_path / "m1")
    status, frame, err = predict("--model", folder, "--edges", full_files[0], "--nodes", full_files[1])
    assert status == 0, err
    predicted = frame.set_index("node_id").loc[[f"p{k}" for k in held], "prediction"].to_numpy()
    inductive = float((predicted == y[held]).mean())
    _, transductive_trainer = _trained_model(graph, config, tmp_path / "m2")
    transductive = float((transductive_trainer.predict().numpy()[held] == y[held]).mean())
    print(f"held-out nodes: inductive {inductive:.4f}, transductive {transductive:.4f}")
    assert inductive >= transductive - 0.03 and inductive > 0.8, (inductive, transductive)
    shutil.rmtree(tmp_path / "m2")


def test_levers_that_read_training_labels_read_the_labels_given(predict, tmp_path):
    """With labels as input and Correct and Smooth, the training graph given as files with only its
    training nodes' labels is predicted exactly as the stored model predicts it: those are the
    labels the model read; the rest of the graph is predicted from features and edges."""
    from dgnn.data.synthetic import csbm

    graph = csbm(300, num_classes=3, avg_degree=6, num_features=16, seed=0)
    config = {**TINY["train"], "feature_norm": "none", "label_input": {"order": 2, "splits": 2},
              "correct_smooth": {"correct_alphas": [0.0, 0.8], "smooth_alphas": [0.0, 0.8], "layers": 5}}
    folder, _ = _trained_model(graph, config, tmp_path / "m")
    src, dst = graph.edge_index.numpy()
    edges = pd.DataFrame({"src": src[src < dst], "dst": dst[src < dst]})
    files = _write(graph, np.arange(graph.num_nodes), edges, graph.train_mask.numpy(), tmp_path / "files")
    status, by_id, err = predict("--model", folder, "--nodes", ",".join(map(str, range(graph.num_nodes))))
    assert status == 0, err
    status, new, err = predict("--model", folder, "--edges", files[0], "--nodes", files[1])
    assert status == 0, err
    assert (new["prediction"].to_numpy() == by_id["prediction"].to_numpy()).all()
    assert np.allclose(new["probability"].to_numpy(), by_id["probability"].to_numpy(), atol=1e-5)
