"""Accuracy on the hard CSBM presets (``synthetic-csbm-hard-<nodes>``: homophily 0.5, feature
signal 0.1): DGNN with ``benchmarks/configs/csbm-dgnn.yaml`` against a features-only MLP, SGC,
SIGN and (10k only: ~20 s a seed here) GCN, each as in :mod:`benchmarks.methods`, seeds 0-2, in
one process with one torch thread. Results: ``results/csbm_hard.json``.

    .venv/bin/python -m benchmarks.bench_csbm_hard     # ~4 min on one core
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.methods import METHODS
from dgnn.config import load_config
from dgnn.data.synthetic import HARD, generate

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "csbm_hard.json"
CONFIG = HERE / "configs" / "csbm-dgnn.yaml"
RUNS = {"synthetic-csbm-hard-10k": ["mlp", "sgc", "sign", "gcn", "dgnn"],
        "synthetic-csbm-hard-100k": ["mlp", "sgc", "sign", "dgnn"]}
SEEDS = [0, 1, 2]


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(1)
    config = load_config(CONFIG).train
    load_before = os.getloadavg()
    rows = []
    for dataset, methods in RUNS.items():
        graph = generate(dataset)
        for method in methods:
            results = [METHODS[method](graph, seed, config=config, feature_norm=config.feature_norm,
                                       progress=lambda _: None) for seed in SEEDS]
            accs = [r.test_acc for r in results]
            rows.append({"dataset": dataset, "method": method, "test_acc_mean": statistics.mean(accs),
                         "test_acc_std": statistics.stdev(accs), "test_acc": accs,
                         "train_seconds_mean": statistics.mean(r.train_seconds for r in results)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "preset": HARD, "seeds": SEEDS,
              "config": str(CONFIG.relative_to(HERE.parent)),
              "machine": {"cpus": os.cpu_count(), "torch_threads": 1, "load_avg_before": load_before,
                          "load_avg_after": os.getloadavg()},
              "rows": rows}
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
