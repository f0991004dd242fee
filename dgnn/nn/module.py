r"""One decoupled module: a single GNN layer that trains on precomputed propagated input.

.. math::
    P_l = \hat A^{p_l} H_{l-1}, \qquad
    H_l = \sigma_l\big(\varphi_l(P_l U_l)\, W_l\big)

``U_l`` (d_{l-1} x d_{l-1}) starts as the identity and is trainable only in backward training;
module 1 has none. Because :math:`\hat A^p (H U) = (\hat A^p H) U`, ``U`` never forces
re-propagation. A supervised module also owns a class head ``W_c`` (d_l x classes).

A filter bank's input holds ``channels`` filtered copies of H side by side; ``U`` then applies to
each copy, :math:`P (I_c \otimes U)`. Extra input columns (training labels as input) come last
and are not transformed.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def dropout_mask(x: torch.Tensor, rate: float, training: bool) -> tuple[torch.Tensor | None, float]:
    """Keep-mask for dropout of ``x`` and the rescaling 1 / keep-probability (None, 1 when off).

    Each entry is dropped when one random byte falls below ``round(256 * rate)``, so ``rate`` is
    rounded to a multiple of 1/256. Eight bytes come from one 64-bit draw of the global torch
    generator: on CPU this is several times faster than ``torch.dropout``, which dominated
    training time on the 1433-wide Cora input.
    """
    threshold = min(round(256 * rate), 255)
    if not training or threshold == 0:
        return None, 1.0
    # random_() alone would leave the top bit of every word 0: ask for the full signed range.
    words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64).random_(-(2**63), None)
    kept = words.view(torch.uint8)[: x.numel()].view(x.shape) >= threshold
    return kept.to(x.device), 256 / (256 - threshold)


class DecoupledModule(nn.Module):
    """Module ``l`` of the stack; rows of its propagated input ``P_l`` go in, rows of ``H_l`` come out.

    Args:
        in_dim: d_{l-1}.
        out_dim: d_l.
        has_input_transform: whether ``U`` exists (False for module 1).
        num_classes: width of the class head; None for an auto-encoder module.
        activation, inner_activation: names from :data:`ACTIVATIONS`.
        input_dropout: dropout on the layer input while training.
        dropout: dropout on the head input while training.
        bias: add a bias to ``W`` (the paper has none).
        channels: filtered copies of H in the input (a filter bank's channel count; 1 otherwise).
        extra_inputs: input columns after the channels that ``U`` does not transform.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        has_input_transform: bool,
        num_classes: int | None = None,
        activation: str = "relu",
        inner_activation: str = "identity",
        input_dropout: float = 0.0,
        dropout: float = 0.0,
        bias: bool = False,
        channels: int = 1,
        extra_inputs: int = 0,
    ):
        super().__init__()
        self.channels, self.extra_inputs = channels, extra_inputs
        self.weight = nn.Parameter(torch.empty(in_dim * channels + extra_inputs, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.input_transform = nn.Parameter(torch.empty(in_dim, in_dim)) if has_input_transform else None
        self.head = nn.Linear(out_dim, num_classes) if num_classes else None
        self.act = ACTIVATIONS[activation]()
        self.inner_act = ACTIVATIONS[inner_activation]()
        self.input_dropout = input_dropout
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.reset_input_transform()
        if self.head is not None:
            self.head.reset_parameters()

    @torch.no_grad()
    def reset_input_transform(self) -> None:
        """U = I: the module then consumes exactly what the previous module produces."""
        if self.input_transform is not None:
            self.input_transform.copy_(torch.eye(self.input_transform.shape[0]))

    def set_input_transform_trainable(self, trainable: bool) -> None:
        if self.input_transform is not None:
            self.input_transform.requires_grad_(trainable)

    def transform_input(self, h: torch.Tensor) -> torch.Tensor:
        """E = H U: what this module expects as input (H itself while U = I)."""
        return h if self.input_transform is None else h @ self.input_transform

    def _transform_channels(self, p: torch.Tensor) -> torch.Tensor:
        """:math:`P (I_c \otimes U)` on the channel columns; extra columns as they are."""
        if self.input_transform is None or (self.channels == 1 and not self.extra_inputs):
            return self.transform_input(p)
        d = self.input_transform.shape[0]
        channels = p[:, : self.channels * d].reshape(len(p), self.channels, d) @ self.input_transform
        return torch.cat([channels.reshape(len(p), -1), p[:, self.channels * d:]], dim=1)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """Rows of ``P_l`` (already propagated) -> rows of ``H_l``."""
        z = self.inner_act(self._transform_channels(p))
        # Dropout before a linear map: rescaling the narrow product instead of the wide input is
        # the same number and saves a pass over the input.
        kept, scale = dropout_mask(z, self.input_dropout, self.training)
        z = z @ self.weight if kept is None else (z * kept) @ self.weight * scale
        if self.bias is not None:
            z = z + self.bias
        return self.act(z)

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """Class logits from rows of ``H_l``."""
        if self.head is None:
            raise RuntimeError("this module has no class head (it is an auto-encoder module)")
        kept, scale = dropout_mask(h, self.dropout, self.training)
        return self.head(h if kept is None else h * kept * scale)

    def penalized_parameters(self) -> list[torch.Tensor]:
        """W and U: the parameters the paper's λ-penalty applies to."""
        return [t for t in (self.weight, self.input_transform) if t is not None]

    def extra_repr(self) -> str:
        d_in, d_out = self.weight.shape
        return (f"{d_in} -> {d_out}, input_transform={self.input_transform is not None}, "
                f"channels={self.channels}, extra_inputs={self.extra_inputs}")

