"""Torch threads on a shared machine: ``dgnn train`` on Cora (shipped config, seed 0) with the
default thread choice (:func:`dgnn.threads.choose_threads`: 1 thread for Cora) and with
``--threads 2``, on the machine as it is and beside a 1-core busy loop (a ``while True`` Python
process, bounded in time and killed at the end: what a co-located server or job does to the cores).

Every run is a fresh process (``python -m cli.main train --json``) without ``OMP_NUM_THREADS`` or
``DGNN_THREADS``; the data are prepared once, untimed. Figures: the command's wall time and the
summary's ``train_seconds_mean`` (training only), ``--repeats`` times each (median reported).
Results: ``results/threads.json``.

    .venv/bin/python benchmarks/bench_threads.py [--repeats 2]   # ~1-2 min
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "threads.json"
TRAIN = [sys.executable, "-m", "cli.main", "train", "--dataset", "cora", "--seeds", "0", "--device", "cpu",
         "--json", "--quiet"]
BUSY_LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "DGNN_THREADS")}
    env["DGNN_DATA_DIR"] = str(data_dir)
    env.setdefault("DGNN_DATA_MIRROR", str(REPO.parent / "shared" / "datasets"))
    return env


@contextlib.contextmanager
def busy_core(on: bool, seconds: float = 600):
    """A process spinning on one core while the block runs (bounded by ``seconds`` if left behind)."""
    if not on:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=seconds)])
    try:
        time.sleep(0.5)  # let it start spinning
        yield
    finally:
        process.kill()
        process.wait()


def train_once(threads: int | None, env: dict) -> dict:
    started = time.perf_counter()
    args = TRAIN + ([] if threads is None else ["--threads", str(threads)])
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    summary = json.loads(proc.stdout)
    return {"wall_s": wall, "train_s": summary["train_seconds_mean"], "threads": summary["threads"],
            "test_acc": summary["test_acc_mean"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    cases = []
    with tempfile.TemporaryDirectory(prefix="dgnn-bench-threads-") as tmp:
        env = _environment(Path(tmp) / "data")
        train_once(1, env)  # fetch, normalise and propagate Cora once, untimed
        for busy in (False, True):
            for threads in (None, 2):
                with busy_core(busy):
                    runs = [train_once(threads, env) for _ in range(args.repeats)]
                cases.append({
                    "background": "1-core busy loop" if busy else "none",
                    "threads_option": "default choice" if threads is None else f"--threads {threads}",
                    "threads_used": runs[0]["threads"],
                    "wall_s_median": statistics.median(r["wall_s"] for r in runs),
                    "train_s_median": statistics.median(r["train_s"] for r in runs),
                    "runs": runs,
                })
                print(json.dumps({k: v for k, v in cases[-1].items() if k != "runs"}), flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(), "load_avg_before": load_before,
                    "load_avg_after": os.getloadavg()},
        "command": " ".join(TRAIN[1:]),
        "cases": cases,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
