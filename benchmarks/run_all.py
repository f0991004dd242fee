"""Run every benchmark, write the CSVs, the plots and REPORT.md, and log to MLflow: one command.

    .venv/bin/python -m benchmarks.run_all            # full run (40-50 min on the shared 2-core box)
    .venv/bin/python -m benchmarks.run_all --quick    # smoke run: Cora + tiny CSBMs, < 3 min,
                                                      # written to benchmarks/work/quick/ (not committed)
    .venv/bin/python -m benchmarks.report             # rebuild plots + REPORT.md from the CSVs only

Each (method, dataset) pair runs in its own child process (:mod:`benchmarks.child`), one after the
other, so no two measurements overlap. DGNN's configs are read when its process starts:
``configs/<dataset>-classify.yaml`` for the real datasets, ``benchmarks/configs/csbm-dgnn.yaml``
for the CSBM series and ``configs/paper-<dataset>-classify.yaml`` for the authors' settings on
Cora, CiteSeer and PubMed; each row records the file, its SHA-256, the architecture it describes
and where its settings come from, and the git commit is recorded with the results. The peers get
the feature normalisation of the dataset's DGNN config.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.harness import REPO, Record, Spec, prepare, run
from benchmarks.plan import GCN_EPOCHS, config_origin, plan, train_config
from dgnn.metrics import mean_std

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = HERE / "work"
def _sha256(path: str | None) -> str:
    if not path or not Path(path).exists():
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def config_columns(spec: Spec) -> dict:
    """A row's architecture, config origin and feature normalisation; a DGNN row's come from its config."""
    if not spec.config or not Path(spec.config).exists():
        return {"architecture": "", "config_origin": "", "feature_norm": spec.feature_norm}
    train = train_config(spec.config)
    return {"architecture": train.describe(), "config_origin": config_origin(spec.config, spec.dataset),
            "feature_norm": train.feature_norm}


def summarise(record: Record, threads: int) -> dict:
    """One CSV row for a (method, dataset) process."""
    spec, seeds, setup = record.spec, record.seeds, record.setup
    row = {
        "group": spec.group, "method": spec.method, "dataset": spec.dataset,
        "nodes": setup.get("nodes"), "edges": setup.get("edges"), "features": setup.get("features"),
        "status": record.status, "seeds_run": len(seeds), "seeds_planned": len(spec.seeds),
    }
    for key in ("test_acc", "val_acc", "macro_f1", "train_seconds", "time_to_best_val",
                "train_seconds_excl_eval", "epochs_run", "best_epoch"):
        row[f"{key}_mean"], std = mean_std(s.get(key) for s in seeds)
        if key in ("test_acc", "train_seconds", "macro_f1"):
            row[f"{key}_std"] = std
    last = record.last_progress or {}
    epochs_target = spec.epochs or (GCN_EPOCHS if spec.trainer == "gcn" else None)
    row["last_epoch"] = last.get("epoch")
    row["last_progress_seconds"] = last.get("t")
    row["extrapolated_seconds"] = None
    if record.status != "ok" and last.get("epoch") and epochs_target:
        row["extrapolated_seconds"] = last["t"] / last["epoch"] * epochs_target
    row |= {
        "peak_rss_mb": round(record.peak_rss_mb, 1),
        "polled_peak_rss_mb": round(record.polled_peak_rss_mb, 1),
        "rss_after_load_mb": round(setup.get("rss_after_load_mb", 0.0), 1),
        "process_wall_seconds": round(record.wall_seconds, 1),
        "load_avg_before": record.load_before, "load_avg_after": record.load_after,
        "threads": threads, "epochs_planned": epochs_target,
        "config": os.path.relpath(spec.config, REPO) if spec.config else "",
        "config_sha256": _sha256(spec.config),
        **config_columns(spec),
    }
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def machine() -> dict:
    import psutil

    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="Cora + two tiny CSBMs, few seeds (smoke test)")
    p.add_argument("--out", help="results folder (default: benchmarks/results, or benchmarks/work/quick with --quick)")
    p.add_argument("--data-dir", help="data folder (default: benchmarks/work/data)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per child (default 1: see 'Machine and timing rules' in REPORT.md)")
    p.add_argument("--only", nargs="*", metavar="METHOD-DATASET",
                   help="re-run only these processes (e.g. dgnn-cora dgnn-paper-cora) and replace their rows "
                        "in the existing CSVs; the rest of the results stay as they are")
    p.add_argument("--no-mlflow", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    out = Path(args.out) if args.out else (WORK / "quick" if args.quick else RESULTS)
    data_dir = Path(args.data_dir) if args.data_dir else WORK / "data"
    work = (WORK / "runs" / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log_file = open(work / "run.log", "a")

    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    specs = plan(args.quick)
    if args.only:
        specs = [s for s in specs if s.name in args.only]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    meta = {"started": started, "quick": args.quick, "threads": args.threads, "machine": machine(),
            "git_commit": _git("rev-parse", "HEAD"), "git_dirty_files": _git("status", "--porcelain").splitlines(),
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run_all", *(argv or sys.argv[1:])]),
            "load_avg_start": os.getloadavg()}
    # --only replaces rows of an earlier run; into an empty folder it is simply a (smaller) run.
    merge = bool(args.only) and (out / "run_meta.json").exists()
    if merge:
        previous = json.loads((out / "run_meta.json").read_text())
        rerun = {"started": started, "processes": [s.name for s in specs], "git_commit": meta["git_commit"],
                 "git_dirty_files": len(meta["git_dirty_files"]), "load_avg_start": meta["load_avg_start"]}
        meta = {**previous, "reruns": [*previous.get("reruns", []), rerun]}
    for dataset in dict.fromkeys(s.dataset for s in specs):
        log(f"prepare {dataset}: {prepare(dataset, data_dir)}")
    records: list[Record] = []
    for spec in specs:
        if spec.method.startswith("dgnn") and not Path(spec.config).exists():
            log(f"skip {spec.name}: {spec.config} does not exist")
            records.append(Record(spec, "missing config"))
            continue
        records.append(run(spec, work, data_dir, log=log, threads=args.threads))
        write_outputs(out, work, records, meta, specs, args.threads, args.quick, merge)  # partial results
    if merge:
        meta["reruns"][-1]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    else:
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    report_path = write_outputs(out, work, records, meta, specs, args.threads, args.quick, merge)
    log(f"report: {report_path}")
    if not args.no_mlflow:
        from benchmarks.mlflow_log import log_results

        run_id = log_results(out, report_path, quick=args.quick)
        log(f"mlflow run {run_id}")
    return 0


def _merged(path: Path, new: list[dict], merge: bool) -> list[dict]:
    """``new`` rows, or with ``merge`` the rows already in ``path`` with those of the same
    (group, method, dataset) replaced by ``new`` (in place) and unknown ones appended."""
    if not merge or not path.exists():
        return new
    key = lambda r: (r["group"], r["method"], r["dataset"])  # noqa: E731
    with open(path) as f:
        old = list(csv.DictReader(f))
    fresh: dict = {}
    for r in new:
        fresh.setdefault(key(r), []).append(r)
    rows, placed = [], set()
    for r in old:
        k = key(r)
        if k in fresh:
            if k not in placed:
                rows += fresh[k]
                placed.add(k)
        else:
            rows.append(r)
    return rows + [r for k, group in fresh.items() if k not in placed for r in group]


def write_outputs(out: Path, work: Path, records: list[Record], meta: dict, specs: list[Spec], threads: int,
                  quick: bool, merge: bool = False) -> Path:
    """CSVs, run_meta.json, plots and the report for the records so far (``merge``: update rows in place)."""
    if merge:
        meta["reruns"][-1]["load_avg_end"] = os.getloadavg()
        meta["configs"] = {**meta.get("configs", {}),
                           **{os.path.relpath(s.config, REPO): _sha256(s.config) for s in specs if s.config}}
    else:
        meta["load_avg_end"] = os.getloadavg()
        meta["runs_done"] = f"{len(records)} of {len(specs)}"
        meta["configs"] = {os.path.relpath(s.config, REPO): _sha256(s.config) for s in specs if s.config}
    rows = [summarise(r, threads) for r in records]
    for r, record in zip(rows, records):
        r["measured_at"] = time.strftime("%H:%M", time.localtime(time.time() - record.wall_seconds))
    write_csv(out / "peers.csv", _merged(out / "peers.csv", [r for r in rows if r["group"] in ("peers", "core")], merge))
    write_csv(out / "scaling.csv", _merged(out / "scaling.csv", [r for r in rows if r["group"] == "scaling"], merge))
    write_csv(out / "seeds.csv", _merged(out / "seeds.csv", [
        {"group": r.spec.group, "method": r.spec.method, "dataset": r.spec.dataset,
         **{k: v for k, v in s.items() if k != "kind"}} for r in records for s in r.seeds], merge))
    (out / "run_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (work / "records.json").write_text(json.dumps([asdict(r) for r in records], indent=2, default=str))

    from benchmarks import report

    return report.build(out, quick=quick)


if __name__ == "__main__":
    sys.exit(main())
