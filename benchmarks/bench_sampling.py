"""Per-step batch sampling time against graph size: the trainer's samplers (:mod:`dgnn.sampling`)
on synthetic index pools of 10k, 1M and 10M nodes, batch 128, one torch thread.

Cases: uniform rows over all nodes; rows of a training pool (a sorted random tenth of the nodes);
auto-encoder rows (endpoints of uniform edges of a random edge list with 5n columns, share 0.5,
filled up with uniform nodes); and, as the reference, ``torch.randperm(n)[:128]``, what a step
cost before issue 14. Each figure is the median of 5 rounds, each round as many calls as fit in
0.1 s after 5 warm-up calls. No graph is built: sampling touches only the index tensors.
Results: ``results/sampling.json``.

    .venv/bin/python -m benchmarks.bench_sampling     # ~1 min, ~1.5 GB peak RSS (the 10M edge list)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from dgnn.sampling import sample_edge_rows, sample_rows

RESULT = Path(__file__).resolve().parent / "results" / "sampling.json"
SIZES = (10_000, 1_000_000, 10_000_000)
BATCH = 128


def seconds_per_call(call: Callable[[], object], rounds: int = 5, round_seconds: float = 0.1) -> float:
    """Median over ``rounds`` of the mean time of one call within a round of ``round_seconds``."""
    for _ in range(5):
        call()
    means = []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < round_seconds:
            call()
            calls += 1
        means.append(elapsed / calls)
    return statistics.median(means)


def cases(n: int, generator: torch.Generator) -> dict[str, Callable[[], object]]:
    train_pool = torch.sort(torch.randperm(n, generator=generator)[: n // 10]).values
    edge_index = torch.randint(n, (2, 5 * n), generator=generator)
    return {
        "uniform": lambda: sample_rows(n, BATCH, generator),
        "training pool (n/10)": lambda: sample_rows(train_pool, BATCH, generator),
        "edge endpoints (share 0.5)": lambda: sample_edge_rows(edge_index, n, BATCH, 0.5, generator),
        "reference: randperm(n)[:128]": lambda: torch.randperm(n, generator=generator)[:BATCH],
    }


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    generator = torch.Generator().manual_seed(0)
    rows = []
    for n in SIZES:
        for case, call in cases(n, generator).items():
            rows.append({"nodes": n, "case": case, "us_per_batch": 1e6 * seconds_per_call(call)})
            print(json.dumps(rows[-1]), flush=True)
    growth = {case: next(r["us_per_batch"] for r in rows if r["case"] == case and r["nodes"] == SIZES[-1])
              / next(r["us_per_batch"] for r in rows if r["case"] == case and r["nodes"] == SIZES[0])
              for case in dict.fromkeys(r["case"] for r in rows)}
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "torch_threads": 1, "python": platform.python_version(),
                    "torch": torch.__version__, "load_avg_before": load_before,
                    "load_avg_after": os.getloadavg(),
                    "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20},
        "batch": BATCH,
        "rows": rows,
        f"time_{SIZES[-1]}_over_{SIZES[0]}": growth,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(growth, indent=2))
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
