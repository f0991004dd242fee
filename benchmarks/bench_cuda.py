"""``dgnn train`` on CUDA against the same machine's CPU: same configs and seeds, same metrics?

Runs the shipped Cora / CiteSeer / PubMed configs (seeds 0-2, both tasks) and the CSBM 1M
scaling config (seed 0) once on ``cuda`` and once on ``cpu`` (torch's default thread count), after
one warm-up run on the GPU. Appends one JSON line per run to ``OUT`` (default
``benchmarks/results/cuda.jsonl``); stops starting runs after ``BUDGET`` seconds. Needs a GPU:

    DGNN_DATA_MIRROR=../shared/datasets python benchmarks/bench_cuda.py [OUT] [BUDGET]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from dgnn.config import default_config_path, load_config
from dgnn.seeds import train_seeds

CSBM_CONFIG = Path(__file__).parent / "configs" / "csbm-dgnn.yaml"
JOBS = [(d, t) for d in ["cora", "citeseer", "pubmed"] for t in ["classify", "cluster"]]
JOBS += [("synthetic-csbm-1m", "classify")]


def run(dataset: str, task: str, device: str) -> dict:
    synthetic = dataset.startswith("synthetic")
    config = load_config(CSBM_CONFIG if synthetic else default_config_path(dataset, task)).train
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    summary = train_seeds(dataset, config, [0] if synthetic else [0, 1, 2], device=device, verbose=False)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"dataset": dataset, "task": task, "device": device, "wall_s": wall, "peak_gpu_gib": peak,
            "cpu_threads": torch.get_num_threads(), **{k: v for k, v in summary.items() if k.endswith("_mean")}}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "cuda.jsonl")
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 600)
    if not torch.cuda.is_available():
        sys.exit("no CUDA device here: run this on a machine with a GPU")
    print("torch", torch.__version__, torch.cuda.get_device_name(0), flush=True)
    run("cora", "classify", "cuda")  # CUDA context and kernels warm-up
    with out.open("a") as sink:
        for dataset, task in JOBS:
            for device in ("cuda", "cpu"):
                if time.time() > deadline:
                    print(f"budget spent: skipped {dataset} {task} {device}", flush=True)
                    continue
                row = run(dataset, task, device)
                print(json.dumps(row), flush=True)
                sink.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
