"""Shared constants of the flows tests (a plain module: tests/ is on sys.path)."""

# A tiny Cora config: 2 modules, one backward round, 20 SGD steps per module step (6 steps).
TINY = {
    "dataset": "cora",
    "train": {
        "task": "classify", "feature_norm": "row", "eta": 100, "bp_count": 1, "keep_own_loss": True,
        "modules": [
            {"width": 32, "order": 2, "lr": 0.01, "steps": 20, "batch_size": 140, "weight_decay": 5e-4,
             "dropout": 0.5, "input_dropout": 0.5},
            {"width": 16, "order": 2, "lr": 0.01, "steps": 20, "batch_size": 140, "weight_decay": 5e-4,
             "dropout": 0.5},
        ],
    },
}
