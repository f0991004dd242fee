"""Data layer at scale: CSBM generate + store, normalise, propagate (p = 2) on 2 cores.

Each configuration runs in a fresh child process pinned to 2 CPUs with 2 torch threads; the
parent records the child's wall time and peak RSS (``ru_maxrss`` from ``os.wait4``) and writes
``benchmarks/results/data_scale.json``. Usage::

    .venv/bin/python benchmarks/bench_data_scale.py [--nodes 1000000] [--degrees 10 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "data_scale.json"
RSS_LIMIT_GB = 6.0  # GiB


def child(nodes: int, avg_degree: float, features: int, data_dir: str) -> None:
    """Run the three steps and print their timings as JSON (one line)."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    import torch

    torch.set_num_threads(2)
    from dgnn.data import normalise_stage, propagate_stage
    from dgnn.data.layout import store_graph
    from dgnn.data.stages import BLOCK_ROWS
    from dgnn.data.synthetic import csbm

    name = f"bench-csbm-{nodes}-deg{avg_degree:g}"
    seconds = {}
    start = time.perf_counter()
    stored = store_graph(csbm(nodes, avg_degree=avg_degree, num_features=features, name=name), data_dir)
    seconds["generate_validate_store"] = time.perf_counter() - start
    start = time.perf_counter()
    normalise_stage(name, data_dir)
    seconds["normalise"] = time.perf_counter() - start
    start = time.perf_counter()
    propagate_stage(name, [2], data_dir)
    seconds["propagate_p2"] = time.perf_counter() - start
    counts = {"nodes": stored.nodes, "undirected_edges": stored.edges,
              "directed_nonzeros": 2 * stored.edges, "features": stored.features}
    seconds = {k: round(v, 2) for k, v in seconds.items()}
    print(json.dumps({"seconds": seconds, "counts": counts, "block_rows": BLOCK_ROWS}))


def run(nodes: int, avg_degree: float, features: int, data_dir: str | None) -> dict:
    """One configuration in a child process; its own peak RSS comes from ``os.wait4``."""
    scratch = tempfile.TemporaryDirectory(prefix="dgnn-bench-", dir=data_dir)
    with scratch as tmp, tempfile.TemporaryFile("w+") as out:
        cmd = [sys.executable, __file__, "--child", "--nodes", str(nodes), "--degrees", str(avg_degree),
               "--features", str(features), "--data-dir", tmp]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"benchmark child failed with exit status {proc.returncode}")
        out.seek(0)
        record = json.loads(out.read().strip().splitlines()[-1])
    peak_gb = usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    return {
        "config": {"nodes": nodes, "avg_degree": avg_degree, "features": features, "orders": [2],
                   "cpus": 2, "torch_threads": 2},
        **record,
        "wall_seconds_total": round(wall, 2),
        "peak_rss_gib": round(peak_gb, 3),
        "rss_limit_gib": RSS_LIMIT_GB,
        "within_limit": peak_gb <= RSS_LIMIT_GB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--degrees", type=float, nargs="+", default=[20.0, 10.0])
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--data-dir", help="scratch folder (default: the system temp folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.nodes, args.degrees[0], args.features, args.data_dir)
        return
    runs = []
    for degree in args.degrees:
        runs.append(run(args.nodes, degree, args.features, args.data_dir))
        print(json.dumps(runs[-1]), flush=True)
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
               "python": platform.python_version()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "data_scale", "machine": machine, "runs": runs}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
