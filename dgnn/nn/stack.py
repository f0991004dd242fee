r"""The module stack of a config: built from it, and applied to every node at once.

.. math::
    P_1 = g_1(\hat A)\,N(X),\quad H_l = \sigma(\tau(P_l U_l) W_l + b_l),\quad P_{l+1} = g_{l+1}(\hat A) H_l

(:math:`g_l`: module l's filter, :mod:`dgnn.nn.filters`; :math:`\tau`, :math:`\sigma`: its inner
and outer activations). The trainer builds its modules here, and the logged model applies the
selected pass's weights with :func:`apply_stack`, so both run the same code.
"""

from __future__ import annotations

import torch

from dgnn.config import TrainConfig
from dgnn.nn.filters import graph_filter
from dgnn.nn.module import DecoupledModule
from dgnn.propagation import normalise_features


def build_stack(config: TrainConfig, num_features: int, num_classes: int | None) -> list[DecoupledModule]:
    """Freshly initialised modules of ``config`` (a class head on each when ``num_classes``)."""
    dims = [num_features] + [m.width for m in config.modules]
    return [DecoupledModule(dims[i], dims[i + 1], has_input_transform=i > 0, num_classes=num_classes,
                            activation=m.activation, inner_activation=m.inner_activation,
                            input_dropout=m.input_dropout, dropout=m.dropout, bias=m.bias)
            for i, m in enumerate(config.modules)]


@torch.no_grad()
def apply_stack(config: TrainConfig, modules: list[DecoupledModule], adj: torch.Tensor,
                x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H_L, the last module's class logits or None) on every node, from the raw features ``x``."""
    h = normalise_features(x.float(), config.feature_norm)
    for cfg, module in zip(config.modules, modules):
        h = module.eval()(graph_filter(adj, h, cfg.order, cfg.filter, cfg.alpha))
    last = modules[-1]
    return h, None if last.head is None else last.classify(h)
