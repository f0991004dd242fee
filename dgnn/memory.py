"""Whether training a config fits in this machine's memory, checked before anything starts (no
server, no data stage): a config within the bounds of :mod:`dgnn.config` can still need more
memory than there is (a 65536-wide second module's ``U`` alone is 17 GB), and the trainer would
then grow until the OOM killer ends it.

Counted: every module's parameters (``W``, ``U``, the class head) four times, for the values,
their gradients and Adam's two moments, and, when node tensors stay in memory
(``--out-of-core off``), the trainer's node tensors (:func:`dgnn.node_store.node_tensor_bytes`);
``auto`` moves those to files when they would fill half the memory. The graph's size comes from
its stored ``meta.json``, or the name of a synthetic graph; an unknown graph counts as empty.
"""

from __future__ import annotations

import json

from dgnn.config import TrainConfig
from dgnn.data import synthetic
from dgnn.data.layout import graph_dir
from dgnn.machine import available_memory
from dgnn.node_store import node_tensor_bytes


class NotEnoughMemory(ValueError):
    """A config that cannot train in this machine's memory; the message says how much it needs."""


def graph_size(dataset: str, data_dir=None) -> tuple[int, int, int]:
    """(nodes, features, classes) of ``dataset`` as far as known without building it."""
    try:
        meta = json.loads((graph_dir(dataset, data_dir) / "meta.json").read_text())
        return meta["nodes"], meta["features"], meta.get("classes") or 0
    except (OSError, ValueError, KeyError):
        nodes = synthetic.parse_name(dataset)
        return (nodes, 128, 10) if nodes else (0, 0, 0)


def parameter_bytes(config: TrainConfig, num_features: int, num_classes: int) -> int:
    """Bytes of the modules' parameters with their gradients and Adam's two moments."""
    inputs = [num_features] + [m.width for m in config.modules]
    values = sum(d_in * max(1, len(m.channels)) * m.width + (d_in * d_in if index else 0) + m.width * num_classes
                 for index, (d_in, m) in enumerate(zip(inputs, config.modules)))  # a bank: W as wide as its channels
    return 4 * 4 * values


def check_fits(dataset: str, config: TrainConfig, out_of_core: str = "auto", data_dir=None) -> None:
    """Raise :class:`NotEnoughMemory` when training ``config`` on ``dataset`` needs more memory
    than is available now."""
    nodes, features, classes = graph_size(dataset, data_dir)
    needed = parameter_bytes(config, features, classes)
    if out_of_core == "off":
        needed += node_tensor_bytes(nodes, features, config)
    available = available_memory()
    if needed > available:
        raise NotEnoughMemory(
            f"training this config on {dataset} needs about {needed / 1e9:.1f} GB of memory, {available / 1e9:.1f} GB "
            f"are available: lower the width of its modules{' or use --out-of-core auto' if out_of_core == 'off' else ''}")
