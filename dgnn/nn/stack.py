r"""The module stack of a config: built from it, and applied to every node at once.

.. math::
    P_1 = g_1(\hat A)\,N(X),\quad H_l = \sigma(\tau(P_l U_l) W_l + b_l),\quad P_{l+1} = g_{l+1}(\hat A) H_l

(:math:`g_l`: module l's filter, :mod:`dgnn.nn.filters`; :math:`\tau`, :math:`\sigma`: its inner
and outer activations). The trainer builds its modules here, and the logged model applies the
selected pass's weights with :func:`apply_stack` (and :func:`stack_probabilities`, which adds the
config's post-processing), so both run the same code. With training labels as input the last
module also reads the label features of every training node (:mod:`dgnn.nn.label_input`).
"""

from __future__ import annotations

import torch

from dgnn.config import TrainConfig
from dgnn.nn.correct_smooth import correct_and_smooth
from dgnn.nn.filters import module_filter
from dgnn.nn.label_input import label_filter, one_hot_rows
from dgnn.nn.module import DecoupledModule
from dgnn.propagation import normalise_features


def build_stack(config: TrainConfig, num_features: int, num_classes: int | None) -> list[DecoupledModule]:
    """Freshly initialised modules of ``config`` (a class head on each when ``num_classes``)."""
    dims = [num_features] + [m.width for m in config.modules]
    last = len(config.modules) - 1
    label_columns = num_classes if config.label_input is not None and num_classes else 0
    return [DecoupledModule(dims[i], dims[i + 1], has_input_transform=i > 0, num_classes=num_classes,
                            activation=m.activation, inner_activation=m.inner_activation,
                            input_dropout=m.input_dropout, dropout=m.dropout, bias=m.bias,
                            channels=max(1, len(m.channels)), extra_inputs=label_columns if i == last else 0)
            for i, m in enumerate(config.modules)]


@torch.no_grad()
def apply_stack(config: TrainConfig, modules: list[DecoupledModule], adj: torch.Tensor, x: torch.Tensor,
                train_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H_L, the last module's class logits or None) on every node, from the raw features ``x``;
    ``train_labels`` (a class per training node, -1 elsewhere) when the config takes labels as input."""
    h = normalise_features(x.float(), config.feature_norm)
    for i, (cfg, module) in enumerate(zip(config.modules, modules)):
        p = module_filter(adj, h, cfg)
        if module.extra_inputs:
            if train_labels is None:
                raise ValueError("this config takes training labels as input: pass train_labels")
            pool = (train_labels >= 0).nonzero().flatten()
            labels = one_hot_rows(train_labels, pool, module.extra_inputs)
            p = torch.cat([p, module_filter(adj, labels, label_filter(config.label_input))], dim=1)
        h = module.eval()(p)
    last = modules[-1]
    return h, None if last.head is None else last.classify(h)


@torch.no_grad()
def stack_probabilities(config: TrainConfig, modules: list[DecoupledModule], adj: torch.Tensor,
                        x: torch.Tensor, train_labels: torch.Tensor | None = None,
                        post: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H_L, class probabilities or None): :func:`apply_stack`, then the Correct and Smooth
    parameters ``post`` that the trainer chose (``correct_alpha``, ``smooth_alpha``), if any, with
    the training nodes of ``train_labels``."""
    h, logits = apply_stack(config, modules, adj, x, train_labels)
    if logits is None:
        return h, None
    proba = torch.softmax(logits, 1)
    if post is not None:
        train_idx = (train_labels >= 0).nonzero().flatten()
        proba = correct_and_smooth(lambda z: adj @ z, proba, train_idx, train_labels[train_idx],
                                   post["correct_alpha"], post["smooth_alpha"], config.correct_smooth.layers)
    return h, proba
