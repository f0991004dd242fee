"""`dgnn run` on the hard CSBM at 100k, 1M and 10M nodes (average degree 20: 1M, 10M, 100M edges),
against PyG SGC, SIGN and GCN where they fit (issue 14).

Each DGNN row is one fresh `dgnn run --json` process in its own work folder (data folder, MLflow
store, run folders, Prefect home), so its wall time includes generating, validating and storing the
graph, normalising, propagating, every module step, evaluation and MLflow logging. Peak memory is
the sum of the resident sizes of the process tree (the CLI, its ephemeral Prefect server), polled
every 0.5 s, and the CLI process's alone. The peers run through `benchmarks.harness` (one child
process each, killed past the same memory limit or their time limit) on the graph the DGNN row
generated.

    .venv/bin/python -m benchmarks.bench_scale --sizes 100k 1m 10m --peers
    .venv/bin/python -m benchmarks.bench_scale --sizes 1m --modes off on   # the out-of-core ratio

Results: ``results/scale.json`` (rows merged by dataset, method and mode).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks import harness

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "scale.json"
CONFIG = REPO / "benchmarks" / "configs" / "csbm-dgnn.yaml"
MEMORY_LIMIT_GB = 12.0
TIME_LIMIT_S = 1800


def dataset(size: str) -> str:
    return f"synthetic-csbm-hard-{size}-d20"


PHASES = {"fetch": "generate + store", "validate": "validate", "normalise": "normalise", "propagate": "propagate",
          "FT": "train", "BT": "train", "evaluate": "evaluate + report", "report": "evaluate + report"}


def _phase(log: Path) -> str:
    """The pipeline phase the run's log is in: the last task run it names."""
    text = log.read_text(errors="replace") if log.exists() else ""
    at = text.rfind("Task run '")
    if at < 0:
        return "start"
    name = text[at + len("Task run '"):].split("'", 1)[0]
    return next((phase for prefix, phase in PHASES.items() if name.startswith(prefix)), "other")


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(sum over the tree, the CLI process alone) in bytes."""
    try:
        own = proc.memory_info().rss
        return own + sum(p.memory_info().rss for p in proc.children(recursive=True)), own
    except psutil.Error:
        return 0, 0


def run_dgnn(name: str, mode: str, work: Path) -> dict:
    """One fresh ``dgnn run`` of ``name`` with ``--out-of-core mode`` in ``work``; its row."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "DGNN_DATA_DIR": str(work / "data"), "DGNN_RUNS_DIR": str(work / "runs"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "PREFECT_HOME": str(work / "prefect"),
           "DGNN_PROJECT_DIR": str(work)}
    env.pop("PREFECT_API_URL", None)
    cmd = [str(Path(sys.executable).with_name("dgnn")), "run", "--dataset", name, "--config", str(CONFIG),
           "--out-of-core", mode, "--json", "--device", "cpu"]
    start = time.perf_counter()
    peak_tree = peak_own = 0
    phase_peak: dict[str, float] = {}
    phase_start: dict[str, float] = {}
    status = "ok"
    with open(work / "stdout.json", "w") as out, open(work / "stderr.log", "w") as err:
        child = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=err)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            tree, own = _tree_rss(watched)
            peak_tree, peak_own = max(peak_tree, tree), max(peak_own, own)
            elapsed = time.perf_counter() - start
            phase = _phase(work / "stderr.log")
            phase_start.setdefault(phase, elapsed)
            phase_peak[phase] = max(phase_peak.get(phase, 0.0), tree / 2**30)
            if tree > MEMORY_LIMIT_GB * 2**30 or elapsed > TIME_LIMIT_S:
                status = "out of memory" if tree > MEMORY_LIMIT_GB * 2**30 else "out of time"
                child.kill()
            time.sleep(0.5)
    wall = time.perf_counter() - start
    starts = sorted(phase_start.items(), key=lambda item: item[1]) + [("end", wall)]
    row = {"dataset": name, "method": "dgnn run", "mode": mode, "status": status, "wall_s": round(wall, 1),
           "peak_tree_rss_gb": round(peak_tree / 2**30, 2), "peak_cli_rss_gb": round(peak_own / 2**30, 2),
           # phases as the log shows them (a phase starts at the poll that first sees its task)
           "phases": {p: {"seconds": round(nxt - at, 1), "peak_rss_gb": round(phase_peak[p], 2)}
                      for (p, at), (_, nxt) in zip(starts, starts[1:])}}
    if status == "ok" and child.returncode != 0:
        row |= {"status": "error", "error": (work / "stderr.log").read_text()[-1500:]}
    if row["status"] == "ok":
        summary = json.loads((work / "stdout.json").read_text())
        row |= {k: summary[k] for k in ("test_acc_mean", "val_acc_mean", "train_seconds_mean", "pipeline_seconds")}
        meta = json.loads((work / "data" / name / "graph" / "meta.json").read_text())
        row |= {"nodes": meta["nodes"], "edges": meta["edges"], "features": meta["features"]}
        row["out_of_core"] = summary["out_of_core"]
    return row


def run_peer(method: str, name: str, nodes: int | None, data_dir: Path, work: Path) -> dict:
    spec = harness.Spec(method, name, [0], feature_norm="none", timeout_s=TIME_LIMIT_S,
                        mem_limit_gb=MEMORY_LIMIT_GB, group="scaling")
    record = harness.run(spec, work / "peers", data_dir, threads=2)
    row = {"dataset": name, "nodes": nodes, "method": f"PyG {method.upper()}", "mode": "in memory", "status": record.status,
           "wall_s": round(record.wall_seconds, 1), "peak_tree_rss_gb": round(record.polled_peak_rss_mb / 1024, 2)}
    if record.seeds:
        row |= {"test_acc_mean": record.seeds[0]["test_acc"], "train_seconds_mean": record.seeds[0]["train_seconds"]}
    return row


def merge(rows: list[dict]) -> list[dict]:
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    key = lambda r: (r["dataset"], r["method"], r["mode"])  # noqa: E731
    fresh = {key(r) for r in rows}
    return [r for r in old if key(r) not in fresh] + rows


def exponents(rows: list[dict]) -> dict:
    """Least-squares slope of log(time) and log(memory) against log(nodes) over the DGNN rows run
    in the mode "auto"."""
    auto = sorted((r for r in rows if r["method"] == "dgnn run" and r["mode"] == "auto" and r["status"] == "ok"),
                  key=lambda r: r["nodes"])
    if len(auto) < 2:
        return {}
    xs = [math.log(r["nodes"]) for r in auto]

    def slope(values: list[float]) -> float:
        ys = [math.log(v) for v in values]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)

    return {"time": round(slope([r["wall_s"] for r in auto]), 2),
            "memory": round(slope([r["peak_tree_rss_gb"] for r in auto]), 2),
            "over": [r["dataset"] for r in auto]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100k", "1m", "10m"])
    parser.add_argument("--modes", nargs="+", default=["auto"], choices=["auto", "on", "off"])
    parser.add_argument("--peers", action="store_true", help="also PyG SGC, SIGN and GCN on each graph")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "scale")
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        name = dataset(size)
        for mode in args.modes:
            work = args.work / f"{size}-{mode}"
            rows.append(run_dgnn(name, mode, work))
            print(json.dumps(rows[-1]), flush=True)
        if args.peers:
            for method in ("sgc", "sign", "gcn"):
                rows.append(run_peer(method, name, rows[-1].get("nodes"), work / "data", args.work))
                print(json.dumps(rows[-1]), flush=True)
        all_rows = merge(rows)
        RESULTS.write_text(json.dumps({"machine": f"{os.cpu_count()} CPUs, "
                                                  f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
                                       "config": str(CONFIG.relative_to(REPO)),
                                       "limits": f"{MEMORY_LIMIT_GB:.0f} GiB and {TIME_LIMIT_S // 60} min",
                                       "exponents": exponents(all_rows), "rows": all_rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
