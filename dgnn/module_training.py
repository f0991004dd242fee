"""How one module trains in a module step: the SGD loop and the losses of the SGNN method.

:class:`ModuleTraining` is the part of :class:`dgnn.trainer.DecoupledTrainer` that trains module
l on its precomputed input: batches drawn from the training targets (a supervised module) or from
the graph's nodes and edges (an auto-encoder module), its own loss, the target term towards the
deeper module's expected input, the λ penalty, and, where the config turns them on, consistency
over DropNode views, class weights, training labels as input and module early stopping on the
validation score. It reads the trainer's state and changes only the module's weights and the
trainer's random generator.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F

from dgnn.evaluation import select_score
from dgnn.nn.consistency import consistency_loss
from dgnn.nn.label_input import label_filter, one_hot_rows, partitions
from dgnn.nn.losses import penalty, reconstruction_loss, target_loss
from dgnn.node_store import NodeTensor
from dgnn.sampling import sample_edge_rows, sample_rows
from dgnn.schedule import Step
from dgnn.results import SgdProgress

EVAL_EVERY = 10


class ModuleTraining:
    """Module steps of a :class:`~dgnn.trainer.DecoupledTrainer` (a base class: the trainer holds
    the config, modules, store, labels, split and node tensors these methods read)."""

    def _train_pool(self) -> torch.Tensor:
        """The nodes with a training target (the training nodes unless pseudo-labels joined them)."""
        return self.train_idx if self.stage == 0 else (self.train_labels >= 0).nonzero().flatten()

    def _class_weights(self) -> torch.Tensor | None:
        """Balanced cross-entropy weights, n_train / (classes x n_c), from the training targets."""
        if self.config.class_weight == "none":
            return None
        counts = torch.bincount(self.train_labels[self._train_pool()], minlength=self.graph.num_classes)
        return (counts.sum() / (len(counts) * counts.clamp_min(1))).float()

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
        self._weights = self._class_weights() if self.supervised else None
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
                val = self._module_val_score(l)
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
        val_metric = self._module_val_score(l) if self.supervised else None
        return losses, loss_times, val_metric, step

    def _module_loss(self, l: int, p_rows, target, own_loss: bool) -> torch.Tensor:
        cfg = self.config.modules[l]
        module = self.modules[l]
        loss = torch.zeros((), device=self.device)
        if self.supervised:
            split = None
            pool = self._train_pool()
            if self.labels_in is not None and l == len(self.modules) - 1:
                split = int(torch.randint(len(self.labels_in["targets"]), (1,), generator=self.generator))
                pool = self.labels_in["targets"][split]  # no batch row sees its own label
            train_batch = self._sample(pool, cfg.batch_size)
            h = None
            if own_loss and self.views[l] is not None:
                loss = loss + self._consistency_term(l, train_batch, split)
            else:
                h = module(self._rows(l, p_rows, train_batch, split))
                if own_loss:
                    loss = loss + self._cross_entropy(module.classify(h), train_batch)
            if target is not None:
                h = module(self._rows(l, p_rows, train_batch, split)) if h is None else h
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

    def _cross_entropy(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, self.train_labels[rows], weight=self._weights)

    def _consistency_term(self, l: int, train_batch: torch.Tensor, split: int | None) -> torch.Tensor:
        """Cross-entropy under two random DropNode views plus their consistency on unlabelled rows."""
        rule = self.config.consistency
        module = self.modules[l]
        rows = torch.cat([train_batch, self._sample(None, rule.batch_size)])
        picked = torch.randperm(rule.views, generator=self.generator)[:2].tolist()
        logits = [module.classify(module(self._rows(l, self.views[l][v], rows, split))) for v in picked]
        m = len(train_batch)
        supervised = torch.stack([self._cross_entropy(z[:m], train_batch) for z in logits]).mean()
        return supervised + rule.weight * consistency_loss([z[m:].softmax(1) for z in logits], rule.temperature)

    @torch.no_grad()
    def _module_val_score(self, l: int) -> float:
        """Module l's validation score (the config's select_metric) from its own class head."""
        module = self.modules[l].eval()
        logits = module.classify(module(self._rows(l, self.propagated[l], self.val_idx)))
        return self._select(logits.softmax(1), logits.argmax(1), self.val_idx)

    def _select(self, proba: torch.Tensor, pred: torch.Tensor, rows: torch.Tensor) -> float:
        return select_score(self.config.select_metric, proba, pred, self.labels[rows])

    def _label_features(self) -> dict:
        """The last module's label features: of every training node, and per partition."""
        rule = self.config.label_input
        spec = label_filter(rule)
        k = self.graph.num_classes
        labels, train_idx = self.labels.cpu(), self.train_idx.cpu()
        pool = self._train_pool().cpu()
        parts = partitions(train_idx, rule.share, rule.splits, self.generator)
        # Only the true training labels are shown (pseudo-labels are targets, never inputs), so the
        # logged model needs just those to rebuild the features.
        return {"all": self.store.propagate(one_hot_rows(labels, train_idx, k).to(self.device), spec),
                "splits": [self.store.propagate(one_hot_rows(labels, shown, k).to(self.device), spec)
                           for shown, _ in parts],
                "targets": [pool[~torch.isin(pool, shown)].to(self.device) for shown, _ in parts]}

    def _rows(self, l: int, source: NodeTensor, index: torch.Tensor, split: int | None = None) -> torch.Tensor:
        """Rows ``index`` of module l's input ``source``, with the label features of partition
        ``split`` (of every training node when None) after them where the module takes labels."""
        rows = self.store.take(source, index)
        if self.labels_in is None or l != len(self.modules) - 1:
            return rows
        labels = self.labels_in["all"] if split is None else self.labels_in["splits"][split]
        return torch.cat([rows, labels[index]], dim=1)

    def _whole_input(self, l: int) -> NodeTensor:
        """Module l's input on every node (propagated, with label features where it takes them)."""
        if self.labels_in is None or l != len(self.modules) - 1:
            return self.propagated[l]
        return torch.cat([self.propagated[l], self.labels_in["all"]], dim=1)
