"""Forward and backward training of a stack of decoupled modules (the SGNN schedule).

FT_0 trains modules 1..L on their own losses. Each of ``bp_count`` rounds then runs
BT (L..1: U_l trainable, module l < L pulled towards E_{l+1} = H_l U_{l+1}) and FT (1..L: U reset
to I, module l < L pulled towards the E_{l+1} just learned). After every forward pass the model is
scored on validation data only (classify: validation accuracy; cluster: modularity of k-means on the
embedding, no labels) and the best pass is kept.

The trainer is a state machine over :func:`schedule`'s steps so that an orchestrator can run one
step per task and checkpoint in between (:meth:`DecoupledTrainer.state_dict`); the steps are in
:mod:`dgnn.schedule`, what they return in :mod:`dgnn.results`.

Accuracy levers of the config, each off by default (the paper's behaviour): consistency over
DropNode views (:mod:`dgnn.nn.consistency`), training labels as input to the last module
(:mod:`dgnn.nn.label_input`), self-training stages (:mod:`dgnn.self_training`), Correct and
Smooth on the selected pass (:mod:`dgnn.post_processing`), a filter bank per module
(:mod:`dgnn.nn.filters`), class weights and the validation score that selects.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from typing import Callable

import torch
import torch.nn.functional as F

from dgnn.config import TrainConfig
from dgnn.data.graph import Graph
from dgnn.evaluation import Split, classification_scores, clustering_result, criterion_name
from dgnn.nn.consistency import keep_weights
from dgnn.nn.filters import propagates
from dgnn.nn.losses import EdgeLookup
from dgnn.nn.stack import build_stack
from dgnn.module_training import ModuleTraining
from dgnn.post_processing import PostProcessing
from dgnn.node_store import DiskStore, MemoryStore, NodeTensor
from dgnn.propagation import normalise_features, normalised_adjacency
from dgnn.results import FitResult, PassResult, SgdProgress, StepResult
from dgnn.schedule import Step, next_stage, schedule
from dgnn.self_training import pseudo_labels


def _check_fit(graph: Graph, config: TrainConfig, store) -> None:  # one line why it cannot, before any work
    if config.task == "classify" and graph.num_classes < 2:
        raise ValueError(f"dataset {graph.name!r} has no labels to classify with")
    if config.label_input is not None and store is not None and store.out_of_core:
        raise ValueError("label_input keeps its label features in memory: train this config with "
                         "--out-of-core off")


class DecoupledTrainer(ModuleTraining, PostProcessing):
    """Trains the module stack on ``graph`` according to ``config``.

    Args:
        graph: features, edges, labels and split (labels are used for training only in
            the classify task; for cluster they are used for reporting, never for selection).
        config: the module list and schedule.
        seed: seeds initialisation, dropout, batch sampling and masks.
        device: where modules and propagated inputs live ("cpu", "cuda", ...).
        adj: the normalised adjacency, if already computed (e.g. by the data stage).
        first_input: P_1 = g_1(Â) N(X) if already computed (module 1's filter applied to
            ``graph.x`` after ``feature_norm``), e.g. by the data stage or for an earlier seed.
        store: where the node tensors live (:mod:`dgnn.node_store`); in memory on ``device``
            with ``adj`` by default, a :class:`~dgnn.node_store.DiskStore` for out-of-core runs.
    """

    def __init__(
        self,
        graph: Graph,
        config: TrainConfig,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        adj: torch.Tensor | None = None,
        first_input: NodeTensor | None = None,
        store: MemoryStore | DiskStore | None = None,
    ):
        self.graph = graph
        self.config = config
        self.seed = seed
        self.device = torch.device(device)
        self.supervised = config.task == "classify"
        _check_fit(graph, config, store)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        x = normalise_features(graph.x.float(), config.feature_norm)
        if store is None:
            adj = normalised_adjacency(graph.edge_index, graph.num_nodes, graph.edge_weight) if adj is None else adj
            store = MemoryStore(adj.to(self.device))
        self.store = store
        self.labels = graph.y.to(self.device)
        self.train_idx, self.val_idx, self.test_idx = (
            mask.nonzero().flatten() for mask in (graph.train_mask, graph.val_mask, graph.test_mask))
        self.split = Split(self.train_idx, self.val_idx, self.test_idx)
        self.edges = None if self.supervised else EdgeLookup(graph.edge_index.to(self.device), graph.num_nodes)
        # What the classifier trains on: the training nodes' labels, plus pseudo-labels in later
        # self-training stages (-1: not a training target). Validation and test labels never enter.
        self.train_labels = torch.full((graph.num_nodes,), -1, dtype=torch.long, device=self.device)
        self.train_labels[self.train_idx] = self.labels[self.train_idx]
        self.stage = 0

        self.modules = [m.to(self.device) for m in
                        build_stack(config, graph.num_features, graph.num_classes if self.supervised else None)]
        L = len(self.modules)
        # inputs[l] = H_{l-1} from the last forward pass; propagated[l] = Â^{p_l} inputs[l].
        on_device = (lambda t: t) if store.out_of_core else (lambda t: t.to(self.device))
        self.inputs: list[NodeTensor | None] = [on_device(x)] + [None] * L
        self.propagated: list[NodeTensor | None] = [None] * L
        if first_input is not None:
            self.propagated[0] = on_device(first_input)
        # expected[l] = E_l = H_{l-1} U_l learned in the last backward pass (target of module l-1).
        self.expected: list[NodeTensor | None] = [None] * L
        # views[l]: module l's DropNode views (consistency); labels_in: the last module's label
        # features, for every training node and per (shown, targets) partition (label input).
        self.views: list[list[NodeTensor] | None] = [None] * L
        self.labels_in: dict | None = None
        self._weights: torch.Tensor | None = None  # class weights of the module step in progress
        self.passes: list[PassResult] = []
        self.best: dict | None = None
        self.propagations = 0

    # -- one step ---------------------------------------------------------------------------

    def run_step(self, step: Step, on_sgd: Callable[[SgdProgress], None] | None = None) -> StepResult:
        """Train one module for one pass; a forward step also recomputes its output on all nodes.

        ``on_sgd`` is called after every SGD step (progress reports; it sees floats only, so it
        cannot change the training)."""
        start = time.perf_counter()
        if step.stage != self.stage:
            self._begin_stage(step.stage)
        l = step.module
        module = self.modules[l]
        if step.direction == "forward" and l == 0 and step.pass_index > 0:
            for m in self.modules:
                m.reset_input_transform()
        self._ensure_propagated(l)
        target = self._target_for(step)
        module.set_input_transform_trainable(step.direction == "backward")
        try:
            losses, loss_times, val_metric, steps_run = self._train_module(l, target, step, on_sgd)
        finally:
            self.store.release()
        if step.direction == "forward":
            self._forward_output(l)
        elif l > 0:
            with torch.no_grad():
                self.expected[l] = self.store.map_rows(module.transform_input, self.inputs[l])
        module.set_input_transform_trainable(False)
        return StepResult(step, losses, val_metric, time.perf_counter() - start, steps_run, loss_times)

    def advance(self, step: Step, on_sgd: Callable[[SgdProgress], None] | None = None
                ) -> tuple[StepResult, PassResult | None]:
        """:meth:`run_step`, then :meth:`end_forward_pass` when ``step`` is the last of a forward
        pass (and :meth:`should_stop` says whether to go on)."""
        result = self.run_step(step, on_sgd)
        last_of_pass = step.direction == "forward" and step.module == len(self.modules) - 1
        # passes are numbered across stages, so that "the best pass" names one
        number = step.stage * (self.config.bp_count + 1) + step.pass_index
        return result, self.end_forward_pass(number) if last_of_pass else None

    def _target_for(self, step: Step) -> NodeTensor | None:
        l = step.module
        if l == len(self.modules) - 1 or (step.direction == "forward" and step.pass_index == 0):
            return None
        return self.expected[l + 1]

    def _ensure_propagated(self, l: int) -> None:
        cfg = self.config.modules[l]
        if self.propagated[l] is None:
            self.propagated[l] = self.store.propagate(self.inputs[l], cfg)
            self.propagations += 1
        consistency = self.config.consistency
        # a module that does not propagate has no neighbourhood to drop nodes from: no views
        if consistency is not None and self.views[l] is None and propagates(cfg):
            self.views[l] = [self.store.propagate(self.store.scale_rows(self.inputs[l], keep_weights(
                self.graph.num_nodes, consistency.drop_rate, self.generator)), cfg)
                for _ in range(consistency.views)]
        if self.config.label_input is not None and self.labels_in is None:
            self.labels_in = self._label_features()

    @torch.no_grad()
    def _forward_output(self, l: int) -> None:
        """H_l on all nodes; invalidates what depends on it (module l+1's propagated input)."""
        module = self.modules[l].eval()
        self.inputs[l + 1] = self.store.map_rows(module, self._whole_input(l))
        if l + 1 < len(self.modules):
            self.propagated[l + 1] = None
            self.views[l + 1] = None

    def _begin_stage(self, stage: int) -> None:
        """A self-training stage: pseudo-labels from the best pass so far join the training
        targets; the modules start afresh, and so does everything computed from their outputs."""
        nodes, classes = pseudo_labels(self.best["proba"].to(self.device), self.train_idx, self.val_idx,
                                       self.config.self_training)
        self.train_labels = torch.full_like(self.train_labels, -1)
        self.train_labels[self.train_idx] = self.labels[self.train_idx]
        self.train_labels[nodes] = classes
        for module in self.modules:
            module.reset_parameters()
        L = len(self.modules)
        self.inputs[1:] = [None] * L
        self.propagated[1:] = [None] * (L - 1)
        self.views[1:] = [None] * (L - 1)
        self.expected = [None] * L
        self.labels_in = None
        self.stage = stage

    # -- passes and selection ---------------------------------------------------------------

    def end_forward_pass(self, pass_index: int) -> PassResult:
        """Score the model after a forward pass and keep it if it is the best so far."""
        output = self.inputs[-1]
        proba = None
        if self.supervised:
            metrics, prediction, proba = self._classification_metrics(output)
        else:
            metrics, prediction = clustering_result(self.store.load(output), self.graph.edge_index, self.graph.y,
                                                    self.graph.num_classes, self.config, self.seed)
        criterion = metrics[criterion_name(self.config)]
        result = PassResult(pass_index, criterion, metrics)
        if self.best is None or criterion > self.best["criterion"]:
            result.is_best = True
            self.best = {
                "pass_index": pass_index,
                "criterion": criterion,
                "metrics": metrics,
                "prediction": prediction,
                # what self-training and post-processing start from (n x classes: kept only for them)
                "proba": proba if self.config.self_training or self.config.correct_smooth else None,
                "output": self.store.snapshot(output),
                "modules": [copy.deepcopy(m.state_dict()) for m in self.modules],
            }
        self.passes.append(result)
        return result

    def should_stop(self) -> bool:
        """True when ``pass_patience`` forward passes of this stage in a row did not beat the best
        one (the rest of the stage is then skipped: :func:`dgnn.schedule.next_stage`)."""
        patience = self.config.pass_patience
        stage_start = self.stage * (self.config.bp_count + 1)
        since = self.passes[-1].pass_index - max(self.best["pass_index"], stage_start - 1)
        return patience > 0 and since >= patience

    @torch.no_grad()
    def _classification_metrics(self, output: NodeTensor) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        head = self.modules[-1].eval()
        logits = self.store.apply_rows(head.classify, output)
        pred = logits.argmax(1)
        proba = torch.softmax(logits, 1)
        del logits  # n x classes: at 10M nodes one copy less matters
        metrics = classification_scores(self.labels, proba, pred, self.split)
        val_logits = head.classify(self.store.take(output, self.val_idx))
        metrics["val_loss"] = float(F.cross_entropy(val_logits, self.labels[self.val_idx]))
        return metrics, pred.cpu(), proba.cpu()

    # -- whole run --------------------------------------------------------------------------

    def fit(self, on_step: Callable[[StepResult], None] | None = None,
            on_pass: Callable[[PassResult], None] | None = None,
            on_sgd: Callable[[SgdProgress], None] | None = None) -> FitResult:
        """Run the whole schedule (stopping early per ``pass_patience``) and restore the best pass;
        the callbacks see every module step, forward pass and SGD step (:meth:`run_step`)."""
        start = time.perf_counter()
        steps: list[StepResult] = []
        plan = schedule(len(self.modules), self.config.bp_count, self.config.stages)
        index = 0
        while index < len(plan):
            result, pass_result = self.advance(plan[index], on_sgd)
            self.store.collect(self.node_tensors())
            steps.append(result)
            if on_step:
                on_step(result)
            index += 1
            if pass_result is not None:
                if on_pass:
                    on_pass(pass_result)
                if self.should_stop():
                    index = next_stage(plan, index - 1)
        self.restore_best()
        self.post_process()
        return self.result(time.perf_counter() - start, steps)

    # -- post-processing ----------------------------------------------------------------------

    def result(self, train_seconds: float, steps: list[StepResult] | None = None) -> FitResult:
        """The selected pass's figures, as :meth:`fit` returns them."""
        post = self.best.get("post")
        return FitResult(task=self.config.task, best_pass=self.best["pass_index"], metrics=self.best["metrics"],
                         passes=list(self.passes), steps=steps or [], train_seconds=train_seconds,
                         post_criterion=post["after"] if post else None)

    def node_tensors(self) -> list[NodeTensor]:
        """The node tensors the state refers to (what a checkpoint must keep)."""
        best = [self.best["output"]] if self.best else []
        views = [v for vs in self.views if vs for v in vs]
        return [t for t in (*self.inputs, *self.propagated, *self.expected, *views, *best) if t is not None]

    def restore_best(self) -> None:
        for module, state in zip(self.modules, self.best["modules"]):
            module.load_state_dict(state)

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to continue the schedule in another process and get the same result."""
        return {
            "modules": [m.state_dict() for m in self.modules],
            "inputs": self.inputs,
            "propagated": self.propagated,
            "expected": self.expected,
            "views": self.views,
            "labels_in": self.labels_in,
            "train_labels": self.train_labels,
            "stage": self.stage,
            "passes": [asdict(p) for p in self.passes],
            "best": self.best,
            "propagations": self.propagations,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for module, module_state in zip(self.modules, state["modules"]):
            module.load_state_dict(module_state)
        self.inputs = state["inputs"]
        self.propagated = state["propagated"]
        self.expected = state["expected"]
        self.views = state["views"]
        self.labels_in = state["labels_in"]
        self.train_labels = state["train_labels"]
        self.stage = state["stage"]
        self.passes = [PassResult(**p) for p in state["passes"]]
        self.best = state["best"]
        self.propagations = state["propagations"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    @torch.no_grad()
    def predict(self) -> torch.Tensor:
        """Predicted class (classify) or cluster (cluster) of every node, from the selected pass."""
        return self.best["prediction"]

    @torch.no_grad()
    def embed(self) -> torch.Tensor:
        """H_L of the selected pass on all nodes."""
        return self.store.load(self.best["output"])
