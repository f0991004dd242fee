"""The data layer: fetch / import / generate a graph, validate it, normalise and propagate.

Everything is stored under ``data/<name>/`` (see ``data/README.md``) by atomic folder swaps, so a
failed step never leaves partial output and an earlier good version survives.
"""

from dgnn.data.errors import DataError
from dgnn.data.fetch import fetch, load_graph
from dgnn.data.graph import Graph
from dgnn.data.layout import FetchResult
from dgnn.data.catalogue import DATASETS
from dgnn.data.stages import (
    load_adjacency,
    load_propagated,
    normalise_stage,
    propagate_stage,
    stored_propagated,
    verify,
)
from dgnn.data.stage_folders import content_hash
from dgnn.data.synthetic import PRESETS as SYNTHETIC
from dgnn.data.user_import import import_graph, predictions_to_ids

__all__ = [
    "DATASETS",
    "SYNTHETIC",
    "DataError",
    "FetchResult",
    "Graph",
    "content_hash",
    "fetch",
    "import_graph",
    "load_adjacency",
    "load_graph",
    "load_propagated",
    "stored_propagated",
    "normalise_stage",
    "predictions_to_ids",
    "propagate_stage",
    "verify",
]
