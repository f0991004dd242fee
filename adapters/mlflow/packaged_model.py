"""The logged model's code (MLflow "models from code"): copied into every logged model as-is.

It needs torch, numpy, pandas and mlflow, and the maths of the ``dgnn`` library itself, whose
source is shipped inside the model (``code_paths``), so the numbers are the trainer's own; no
training objects. The model's one artifact (``model.pt``, written by
:func:`adapters.mlflow.model.model_payload`) holds the config, the module weights of the selected pass and
the graph inputs (raw features as sparse COO, or dense where that is smaller; the normalised
adjacency as CSR; the training labels where the config reads them); an out-of-core run's model holds every node's prediction instead of the graph. At load time the library's own stack (:func:`dgnn.nn.stack.stack_probabilities`, with the post-processing the trainer chose) is
applied once to all nodes, exactly as the trainer does after a forward pass,
and ``predict`` returns, for the requested node ids, the predicted class (argmax of the last
module's class head, with its softmax probability) or, for clustering models, the cluster that
k-means gave the selected embedding during training (stored, since k-means is not a function of
the weights alone).

Input: a DataFrame with a ``node`` column (or the first column), a list or an array of node ids.
Output: a DataFrame with ``node``, ``prediction`` and, for classifiers, ``probability`` and, when
the dataset names its classes (``class_names`` of the stored graph: text labels of an imported
graph, the npz sets' names), ``label``: the name of the predicted class.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from dgnn.checkpoint import load_tensors
from dgnn.config import TrainConfig
from dgnn.inductive import aligned_features, graph_probabilities, known_labels
from dgnn.nn.stack import build_stack, stack_probabilities
from dgnn.propagation import csr_tensor

def _payload_stack(payload: dict) -> tuple[TrainConfig, list]:
    """The config and its modules with the stored weights."""
    if payload.get("format") != 2:
        raise ValueError(f"model payload format {payload.get('format')!r}: this model code reads format 2; "
                         "models logged by older dgnn versions carry their own code: load them by their "
                         "MLflow URI, or rerun `dgnn run` to log a new one")
    config = TrainConfig.model_validate(payload["config"])
    modules = build_stack(config, payload["num_features"], payload["num_classes"])
    for module, state in zip(modules, payload["modules"]):
        module.load_state_dict(state)
    return config, modules


def forward_all(payload: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H_L, class probabilities or None) for every node of the stored graph, by the library's own stack."""
    config, modules = _payload_stack(payload)
    n = payload["num_nodes"]
    xs = payload["x"]
    x = xs["dense"] if "dense" in xs else torch.sparse_coo_tensor(
        xs["indices"], xs["values"], tuple(xs["shape"]), check_invariants=False).to_dense()
    a = payload["adj"]
    return stack_probabilities(config, modules, csr_tensor(a["crow"], a["col"], a["values"], n), x,
                               payload.get("train_labels"), payload.get("post"))


def node_ids(model_input) -> np.ndarray:
    if isinstance(model_input, pd.DataFrame):
        column = "node" if "node" in model_input.columns else model_input.columns[0]
        values = model_input[column].to_numpy()
    else:
        values = np.asarray(model_input).reshape(-1)
    return values.astype(np.int64)


class DecoupledGNNModel(PythonModel):
    """Predicts the class (or cluster) of nodes of the graph the model was trained on; a
    classifier also predicts every node of another graph (:meth:`predict_graph`)."""

    def load_context(self, context):
        payload = load_tensors(context.artifacts["model"], remedy="log a new model with `dgnn run`")
        self.payload = {k: payload.get(k) for k in ("format", "config", "modules", "num_features", "num_classes",
                                                    "post", "feature_columns")}
        self.task = payload["task"]
        self.num_nodes = payload["num_nodes"]
        names = payload.get("class_names")  # absent from models logged before names were kept
        self.class_names = None if names is None else np.asarray(names)
        if payload.get("outputs"):  # an out-of-core run's model: predictions stored, no graph
            self.embedding = None
            self.prediction, self.probability = payload["outputs"]["prediction"], payload["outputs"]["probability"]
            return
        embedding, probs = forward_all(payload)
        self.embedding = embedding
        if probs is not None:
            self.probability, self.prediction = probs.max(1)
        else:
            self.probability, self.prediction = None, payload["cluster_prediction"]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        nodes = node_ids(model_input)
        bad = nodes[(nodes < 0) | (nodes >= self.num_nodes)]
        if bad.size:
            raise ValueError(f"node ids out of range 0..{self.num_nodes - 1}: {bad[:10].tolist()}")
        index = torch.from_numpy(nodes)
        out = {"node": nodes, "prediction": self.prediction[index].numpy().astype(np.int64)}
        if self.probability is not None:
            out["probability"] = self.probability[index].numpy().astype(np.float64)
        return self._frame(out)

    def _frame(self, out: dict) -> pd.DataFrame:
        if self.class_names is not None:
            out["label"] = self.class_names[out["prediction"]]
        return pd.DataFrame(out)

    def graph_probabilities(self, graph, known=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(class probabilities, labels in the model's numbering, -1 unlabelled) of every node of
        ``graph`` (a :class:`dgnn.data.graph.Graph`, e.g. the user's grown graph): its own Â and
        propagations, the stored weights (:mod:`dgnn.inductive`); the labels of the nodes in the
        boolean mask ``known`` (default: every labelled node) are the known ones."""
        if self.task != "classify":
            raise ValueError("a clustering model assigns only the nodes it clustered (k-means keeps no "
                             "function of new embeddings): predict them by id, or run `dgnn run` on the new graph")
        config, modules = _payload_stack(self.payload)
        x = aligned_features(graph, self.payload["num_features"], self.payload["feature_columns"])
        names = None if self.class_names is None else self.class_names.tolist()
        labels = known_labels(graph, self.payload["num_classes"], names)
        given = labels if known is None else torch.where(known, labels, -1)
        return graph_probabilities(config, modules, graph, x, given, self.payload["post"])[1], labels

    def predict_graph(self, graph) -> pd.DataFrame:
        """``node_id`` (the graph's own ids), ``prediction``, ``probability`` (and ``label``) for
        every node of ``graph`` (:meth:`graph_probabilities`)."""
        probability, prediction = self.graph_probabilities(graph)[0].max(1)
        ids = graph.node_ids if graph.node_ids is not None else np.arange(graph.num_nodes)
        return self._frame({"node_id": ids, "prediction": prediction.numpy().astype(np.int64),
                            "probability": probability.numpy().astype(np.float64)})


mlflow.models.set_model(DecoupledGNNModel())
