"""Forward and backward training of a stack of decoupled modules (the SGNN schedule).

FT_0 trains modules 1..L on their own losses. Each of ``bp_count`` rounds then runs
BT (L..1: U_l trainable, module l < L pulled towards E_{l+1} = H_l U_{l+1}) and FT (1..L: U reset
to I, module l < L pulled towards the E_{l+1} just learned). After every forward pass the model is
scored on validation data only (classify: validation accuracy; cluster: modularity of k-means on the
embedding, no labels) and the best pass is kept.

The trainer is a state machine over :func:`schedule`'s steps so that an orchestrator can run one
step per task and checkpoint in between (:meth:`DecoupledTrainer.state_dict`); the steps and
results are in :mod:`dgnn.schedule`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict
from typing import Callable

import torch
import torch.nn.functional as F

from dgnn.config import TrainConfig
from dgnn.data.graph import Graph
from dgnn.metrics import accuracy, clustering_scores, kmeans, macro_f1, modularity
from dgnn.nn.losses import EdgeLookup, penalty, reconstruction_loss, target_loss
from dgnn.nn.stack import build_stack
from dgnn.node_store import DiskStore, MemoryStore, NodeTensor
from dgnn.propagation import normalise_features, normalised_adjacency
from dgnn.sampling import sample_edge_rows, sample_rows
from dgnn.schedule import FitResult, PassResult, SgdProgress, Step, StepResult, schedule

EVAL_EVERY = 10


class DecoupledTrainer:
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
        if self.supervised and graph.num_classes < 2:
            raise ValueError(f"dataset {graph.name!r} has no labels to classify with")
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)

        x = normalise_features(graph.x.float(), config.feature_norm)
        if store is None:
            if adj is None:
                adj = normalised_adjacency(graph.edge_index, graph.num_nodes, graph.edge_weight)
            store = MemoryStore(adj.to(self.device))
        self.store = store
        self.labels = graph.y.to(self.device)
        self.train_idx = graph.train_mask.nonzero().flatten()
        self.val_idx = graph.val_mask.nonzero().flatten()
        self.test_idx = graph.test_mask.nonzero().flatten()
        self.edges = None if self.supervised else EdgeLookup(graph.edge_index.to(self.device), graph.num_nodes)

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
        self.passes: list[PassResult] = []
        self.best: dict | None = None
        self.propagations = 0

    # -- one step ---------------------------------------------------------------------------

    def run_step(self, step: Step, on_sgd: Callable[[SgdProgress], None] | None = None) -> StepResult:
        """Train one module for one pass; a forward step also recomputes its output on all nodes.

        ``on_sgd`` is called after every SGD step (progress reports; it sees floats only, so it
        cannot change the training)."""
        start = time.perf_counter()
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
        return result, self.end_forward_pass(step.pass_index) if last_of_pass else None

    def _target_for(self, step: Step) -> NodeTensor | None:
        l = step.module
        if l == len(self.modules) - 1 or (step.direction == "forward" and step.pass_index == 0):
            return None
        return self.expected[l + 1]

    def _ensure_propagated(self, l: int) -> None:
        if self.propagated[l] is None:
            cfg = self.config.modules[l]
            self.propagated[l] = self.store.propagate(self.inputs[l], cfg.order, cfg.filter, cfg.alpha)
            self.propagations += 1

    @torch.no_grad()
    def _forward_output(self, l: int) -> None:
        """H_l on all nodes; invalidates what depends on it (module l+1's propagated input)."""
        module = self.modules[l].eval()
        self.inputs[l + 1] = self.store.map_rows(module, self.propagated[l])
        if l + 1 < len(self.modules):
            self.propagated[l + 1] = None

    def _sample(self, pool: torch.Tensor | None, size: int) -> torch.Tensor:
        """Uniform rows without replacement from ``pool`` (None = all nodes)."""
        return sample_rows(self.graph.num_nodes if pool is None else pool, size, self.generator).to(self.device)

    def _sample_block_rows(self, size: int) -> torch.Tensor:
        """Auto-encoder batch: endpoints of uniform edges filled up with uniform nodes (see
        :func:`dgnn.sampling.sample_edge_rows`)."""
        return sample_edge_rows(self.graph.edge_index, self.graph.num_nodes, size, self.config.edge_batch_share,
                                self.generator).to(self.device)

    def _train_module(
        self, l: int, target: NodeTensor | None, at: Step, on_sgd: Callable[[SgdProgress], None] | None
    ) -> tuple[list[float], list[float], float | None, int]:
        cfg = self.config.modules[l]
        module = self.modules[l].train()
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        p_rows = self.propagated[l]
        own_loss = not self.supervised or target is None or self.config.keep_own_loss
        select = self.config.module_patience > 0 and self.supervised and own_loss
        best_val, best_state, since_best = -1.0, None, 0
        val = None
        losses: list[float] = []
        loss_times: list[float] = []
        step = 0
        for step in range(1, cfg.steps + 1):
            loss = self._module_loss(l, p_rows, target, own_loss)
            losses.append(float(loss.detach()))  # waits for the device: the time below is the loss's
            loss_times.append(time.time())
            if not math.isfinite(losses[-1]):  # stop before the update spreads it to every weight
                raise ValueError(f"{at.name}: the loss of module {l + 1} is {losses[-1]} at SGD step {step}; "
                                 "lower that module's lr (or eta) in the config")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if select and step % EVAL_EVERY == 0:
                val = self._module_val_accuracy(l)
                module.train()
                if val > best_val:
                    best_val, best_state, since_best = val, copy.deepcopy(module.state_dict()), 0
                else:
                    since_best += 1
            if on_sgd:
                on_sgd(SgdProgress(at, step, cfg.steps, losses[-1], loss_times[-1], val))
            if select and since_best >= self.config.module_patience:
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        val_metric = self._module_val_accuracy(l) if self.supervised else None
        return losses, loss_times, val_metric, step

    def _module_loss(self, l: int, p_rows, target, own_loss: bool) -> torch.Tensor:
        cfg = self.config.modules[l]
        module = self.modules[l]
        loss = torch.zeros((), device=self.device)
        if self.supervised:
            train_batch = self._sample(self.train_idx, cfg.batch_size)
            h = module(self.store.take(p_rows, train_batch))
            if own_loss:
                loss = loss + F.cross_entropy(module.classify(h), self.labels[train_batch])
            if target is not None:
                batch = self._sample(None, cfg.batch_size)
                # A batch of every node (in order) needs no gather of the wide input rows.
                whole = len(batch) == len(p_rows) and not self.store.out_of_core
                h_all = module(p_rows if whole else self.store.take(p_rows, batch))
                both = torch.cat([h, h_all])
                rows = self.store.take(target, torch.cat([train_batch, batch]))
                loss = loss + target_loss(both, rows, self.config.eta)
            return loss + penalty(module.penalized_parameters(), cfg.penalty, "l2")
        batch = self._sample_block_rows(cfg.batch_size)
        z = module(self.store.take(p_rows, batch))
        loss = reconstruction_loss(z, self.edges.block(batch), self.config.mask_rate, self.generator)
        if target is not None:
            loss = loss + target_loss(z, self.store.take(target, batch), self.config.eta)
        return loss + penalty(module.penalized_parameters(), cfg.penalty, "l1")

    @torch.no_grad()
    def _module_val_accuracy(self, l: int) -> float:
        module = self.modules[l].eval()
        logits = module.classify(module(self.store.take(self.propagated[l], self.val_idx)))
        return accuracy(logits.argmax(1), self.labels[self.val_idx])

    # -- passes and selection ---------------------------------------------------------------

    def end_forward_pass(self, pass_index: int) -> PassResult:
        """Score the model after a forward pass and keep it if it is the best so far."""
        output = self.inputs[-1]
        if self.supervised:
            metrics, prediction = self._classification_metrics(output)
            criterion = metrics["val_acc"]
        else:
            metrics, prediction = self._clustering_metrics(output)
            criterion = metrics["modularity"]
        result = PassResult(pass_index, criterion, metrics)
        if self.best is None or criterion > self.best["criterion"]:
            result.is_best = True
            self.best = {
                "pass_index": pass_index,
                "criterion": criterion,
                "metrics": metrics,
                "prediction": prediction,
                "output": self.store.snapshot(output),
                "modules": [copy.deepcopy(m.state_dict()) for m in self.modules],
            }
        self.passes.append(result)
        return result

    def should_stop(self) -> bool:
        """True when ``pass_patience`` forward passes in a row did not beat the best one."""
        patience = self.config.pass_patience
        return patience > 0 and self.passes[-1].pass_index - self.best["pass_index"] >= patience

    @torch.no_grad()
    def _classification_metrics(self, output: NodeTensor) -> tuple[dict[str, float], torch.Tensor]:
        head = self.modules[-1].eval()
        pred = self.store.apply_rows(lambda rows: head.classify(rows).argmax(1), output)
        y = self.labels
        val_logits = head.classify(self.store.take(output, self.val_idx))
        metrics = {
            "train_acc": accuracy(pred[self.train_idx], y[self.train_idx]),
            "val_acc": accuracy(pred[self.val_idx], y[self.val_idx]),
            "val_loss": float(F.cross_entropy(val_logits, y[self.val_idx])),
            "test_acc": accuracy(pred[self.test_idx], y[self.test_idx]),
            "macro_f1": macro_f1(pred[self.test_idx], y[self.test_idx]),
        }
        return metrics, pred.cpu()

    def _clustering_metrics(self, output: NodeTensor) -> tuple[dict[str, float], torch.Tensor]:
        labelled = self.graph.y >= 0
        k = self.graph.num_classes
        output = self.store.load(output)
        if self.config.kmeans_normalise:
            output = F.normalize(output, dim=1)
        pred = torch.from_numpy(kmeans(output, k, self.config.kmeans_restarts, self.seed))
        metrics = {"modularity": modularity(self.graph.edge_index, pred)}
        metrics |= clustering_scores(pred[labelled], self.graph.y[labelled])
        return metrics, pred

    # -- whole run --------------------------------------------------------------------------

    def fit(self, on_step: Callable[[StepResult], None] | None = None,
            on_pass: Callable[[PassResult], None] | None = None,
            on_sgd: Callable[[SgdProgress], None] | None = None) -> FitResult:
        """Run the whole schedule (stopping early per ``pass_patience``) and restore the best pass;
        the callbacks see every module step, forward pass and SGD step (:meth:`run_step`)."""
        start = time.perf_counter()
        steps: list[StepResult] = []
        plan = schedule(len(self.modules), self.config.bp_count)
        for step in plan:
            result, pass_result = self.advance(step, on_sgd)
            self.store.collect(self.node_tensors())
            steps.append(result)
            if on_step:
                on_step(result)
            if pass_result is not None:
                if on_pass:
                    on_pass(pass_result)
                if self.should_stop():
                    break
        self.restore_best()
        return self.result(time.perf_counter() - start, steps)

    def result(self, train_seconds: float, steps: list[StepResult] | None = None) -> FitResult:
        """The selected pass's figures, as :meth:`fit` returns them."""
        return FitResult(task=self.config.task, best_pass=self.best["pass_index"], metrics=self.best["metrics"],
                         passes=list(self.passes), steps=steps or [], train_seconds=train_seconds)

    def node_tensors(self) -> list[NodeTensor]:
        """The node tensors the state refers to (what a checkpoint must keep)."""
        best = [self.best["output"]] if self.best else []
        return [t for t in (*self.inputs, *self.propagated, *self.expected, *best) if t is not None]

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
