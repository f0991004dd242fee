"""The packaged model: what a pipeline run logs so that it predicts later without the trainer.

:func:`model_payload` gathers the selected pass's module weights and the graph inputs into one
dictionary of tensors; :func:`save_packaged_model` writes it as an MLflow pyfunc model whose code is
:mod:`adapters.mlflow.packaged_model` (copied into the model, "models from code"); :func:`load` and
:func:`predict` read any logged model back by URI (``runs:/<id>/model``,
``models:/dgnn-cora-classify/3``, ``models:/dgnn-cora-classify@champion``) or folder, with this
dgnn's own code only; :func:`predict_new_graph` applies a classifier to a graph given as files.
"""

from __future__ import annotations

import types
import warnings
from importlib.metadata import version
from pathlib import Path

import torch

from dgnn.config import TrainConfig
from adapters.process import log_levels

CODE = Path(__file__).with_name("packaged_model.py")
LIBRARY = Path(__file__).resolve().parents[2] / "dgnn"  # shipped with the model (code_paths)
PIP_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}",
                    *(f"{name}=={version(name)}" for name in ("numpy", "pandas"))]  # as trained and tested


def model_payload(trainer, config: TrainConfig, dataset: str) -> dict:
    """The config, the module weights of the selected pass (state dicts of
    :class:`dgnn.nn.module.DecoupledModule`) and the graph (features sparse or dense, whichever is
    smaller; CSR adjacency) as plain tensors, and the names of the classes where the graph has them.

    An out-of-core run's graph is too large to ship: its model carries every node's prediction
    (and class probability) of the selected pass instead (``outputs``)."""
    graph = trainer.graph
    payload = {
        "format": 2,
        "dataset": dataset,
        "task": config.task,
        "num_nodes": graph.num_nodes,
        "num_features": graph.num_features,
        "num_classes": graph.num_classes if config.task == "classify" else None,
        "config": config.model_dump(mode="json"),
        "modules": [{k: v.cpu() for k, v in state.items()} for state in trainer.best["modules"]],
        "cluster_prediction": None if config.task == "classify" else trainer.best["prediction"].cpu(),
        "class_names": graph.meta.get("class_names") if config.task == "classify" else None,
        "feature_columns": graph.meta.get("feature_columns"),  # an imported graph's: new graphs align by name
        "post": trainer.best.get("post"),  # Correct and Smooth's chosen weights, if the config has it
    }
    if config.label_input is not None or config.correct_smooth is not None:  # both read training labels
        train_labels = torch.full((graph.num_nodes,), -1, dtype=torch.long)
        train_labels[trainer.train_idx.cpu()] = graph.y[trainer.train_idx.cpu()]
        payload["train_labels"] = train_labels
    if trainer.store.out_of_core:
        return payload | {"outputs": _outputs(trainer, config)}
    x = graph.x.float().cpu()
    # COO costs 20 bytes a non-zero (two int64 indices, a float32), dense 4 bytes an entry.
    if 5 * int(torch.count_nonzero(x)) < x.numel():
        x = x.to_sparse().coalesce()
        features = {"indices": x.indices(), "values": x.values(), "shape": list(x.shape)}
    else:
        features = {"dense": x}
    adj = trainer.store.adj.cpu()
    return payload | {"x": features,
                      "adj": {"crow": adj.crow_indices(), "col": adj.col_indices(), "values": adj.values()}}


def _outputs(trainer, config: TrainConfig) -> dict:
    """Every node's prediction and, for a classifier, its probability, block by block."""
    probability = None
    if trainer.best.get("proba") is not None:  # post-processed, or kept for self-training
        probability = trainer.best["proba"].amax(1).cpu()
    elif config.task == "classify":
        head = trainer.modules[-1].eval()
        with torch.no_grad():
            probability = trainer.store.apply_rows(lambda rows: torch.softmax(head.classify(rows), 1).amax(1),
                                                   trainer.best["output"]).cpu()
    return {"prediction": trainer.predict().cpu(), "probability": probability}


def save_packaged_model(payload: dict, path: Path, mlflow_model=None) -> Path:
    """Write the pyfunc model folder at ``path`` (which must not exist yet); ``mlflow_model``: the
    ``MLmodel`` of the Logged Model it becomes (:mod:`adapters.mlflow.logged_model`)."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    path = Path(path)
    weights = path.parent / f"{path.name}-model.pt"
    torch.save(payload, weights)
    outputs = [ColSpec("long", "node"), ColSpec("long", "prediction")]
    if payload["task"] == "classify":
        outputs.append(ColSpec("double", "probability"))
    if payload.get("class_names"):
        outputs.append(ColSpec("string", "label"))
    signature = ModelSignature(inputs=Schema([ColSpec("long", "node")]), outputs=Schema(outputs))
    with warnings.catch_warnings(), log_levels.warnings_only("mlflow.pyfunc"):
        warnings.simplefilter("ignore", UserWarning)  # predict has no type hints: the signature says it
        mlflow.pyfunc.save_model(
            path,
            mlflow_model=mlflow_model,
            python_model=str(CODE),
            code_paths=[str(LIBRARY)],
            artifacts={"model": str(weights)},
            signature=signature,
            input_example=pd.DataFrame({"node": range(min(3, payload["num_nodes"]))}),
            pip_requirements=PIP_REQUIREMENTS,
            metadata={"dataset": payload["dataset"], "task": payload["task"]},
        )
    weights.unlink()
    _without_build_paths(path / "MLmodel")
    return path


def _without_build_paths(mlmodel: Path) -> None:
    """Drop what ``save_model`` records of where the model was built: the absolute path of this
    clone's code and of the temporary payload. No loader reads them (they take the file names
    inside the folder), and they differ between clones of one model."""
    from mlflow.models import Model

    model = Model.load(mlmodel)
    flavor = model.flavors["python_function"]
    flavor["model_code_path"] = Path(flavor["model_code_path"]).name
    for artifact in flavor.get("artifacts", {}).values():
        artifact["uri"] = artifact["path"]
    model.save(mlmodel)


class ModelRefused(RuntimeError):
    """A model folder that this dgnn does not run; the message names it and says why."""


def load(model_uri: str):
    """The logged model at ``model_uri`` (a URI or a model folder), run by this dgnn's own code.

    MLflow would run the code inside the model folder, its ``packaged_model.py`` and the ``dgnn``
    copy beside it: a copied model with lines added there ran them. Here nothing in the folder
    runs: its code must be this version's :mod:`adapters.mlflow.packaged_model`, byte for byte (else
    :class:`ModelRefused`), and that code, installed, reads the folder's payload as plain tensors."""
    import mlflow

    from adapters.process import stores
    from adapters.mlflow.packaged_model import DecoupledGNNModel
    from adapters.process.settings import sqlite_path, tracking_uri
    from dgnn.processes import owned_temp_dir

    with owned_temp_dir("predict") as tmp:
        if Path(model_uri).is_dir():
            folder = Path(model_uri)
        else:
            db = sqlite_path(tracking_uri())
            if db is not None and db.exists():
                stores.check_database(db)
            mlflow.set_tracking_uri(tracking_uri())
            mlflow.set_registry_uri(tracking_uri())
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        model = DecoupledGNNModel()
        model.load_context(types.SimpleNamespace(artifacts={"model": str(_payload_file(folder, model_uri))}))
    return LoadedModel(model)


class LoadedModel:
    """``predict(model_input)``, as on the model MLflow loads."""

    def __init__(self, model):
        self.model = model

    def predict(self, model_input):
        return self.model.predict(None, model_input)

    def predict_graph(self, graph):
        return self.model.predict_graph(graph)

    def validation_score(self, graph, metric: str) -> float:
        """``metric`` ("acc", "macro_f1", "roc_auc") on ``graph``'s validation nodes, the stored
        modules applied to ``graph`` with its training nodes' labels as the known ones: how a model
        trained on one data version does on another."""
        from dgnn.evaluation import select_score

        proba, labels = self.model.graph_probabilities(graph, known=graph.train_mask)
        val = graph.val_mask
        return select_score(metric, proba[val], proba[val].argmax(1), labels[val])


def _payload_file(folder: Path, model_uri: str) -> Path:
    """The payload of the model in ``folder`` once its code is found to be this dgnn's own."""
    import yaml

    try:
        flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
        code, payload = folder / Path(flavor["model_code_path"]).name, folder / flavor["artifacts"]["model"]["path"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise ModelRefused(f"{model_uri}: not a model logged by dgnn (no MLmodel naming its code and payload)") \
            from None
    if not (code.is_file() and code.read_bytes() == CODE.read_bytes()):
        raise ModelRefused(f"{model_uri}: refusing to run it: its code ({code.name}) is not this dgnn's "
                           f"{CODE.name} (changed, or logged by another version); log a new model with `dgnn run`")
    if not payload.resolve().is_relative_to(folder.resolve()):
        raise ModelRefused(f"{model_uri}: refusing to load it: its payload lies outside the model folder")
    return payload


def predict(model_uri: str, nodes) -> "pandas.DataFrame":  # noqa: F821
    """Predictions of the logged model for ``nodes`` (ids 0..n-1 of the stored graph)."""
    import pandas as pd

    return load(model_uri).predict(pd.DataFrame({"node": [int(n) for n in nodes]}))


def predict_new_graph(model_uri: str, edges, nodes) -> "pandas.DataFrame":  # noqa: F821
    """Predictions of the logged classifier for every node of the graph in the ``edges`` and
    ``nodes`` files (the format of ``dgnn import``): a grown graph or another one with the
    trained feature columns, validated as an import is; its labels, where given, are the known ones."""
    from dgnn.data.user_import import read_user_graph

    graph = read_user_graph("predict", edges, nodes)  # validated before the model loads
    return load(model_uri).predict_graph(graph)
