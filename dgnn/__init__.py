"""Decoupled GNN training: L one-layer modules trained forward (1 -> L) and backward (L -> 1).

Pure torch / torch-geometric; orchestration (Prefect) and tracking (MLflow) live in ``flows/``.
"""

__version__ = "0.1.0"
