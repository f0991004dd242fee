"""The building blocks: one decoupled module and its losses."""

from dgnn.nn.module import DecoupledModule
from dgnn.nn import losses

__all__ = ["DecoupledModule", "losses"]
