"""Overhead of the tracked pipeline: ``dgnn run`` versus ``dgnn train`` on Cora, same config and seed.

Two figures, both reported in ``results/pipeline_overhead.json``:

* in-process (the acceptance figure): one Python process imports everything, starts the Prefect
  server once and creates the MLflow store with a warm-up run (the one-time costs, reported
  separately), then alternates ``train_seeds`` (what ``dgnn train`` runs) and ``train_pipeline``
  (what ``dgnn run`` runs: data tasks, one task + MLflow child run per module step, evaluate,
  plots, model logging and registration) ``--repeats`` times each; ratio = median / median.
  Run for the shipped config and for the same config with ``bp_count: 2`` (3x the module steps);
* whole commands: ``dgnn train --json`` and ``dgnn run --json`` as subprocesses, once each
  (imports, and for ``dgnn run`` the ephemeral Prefect server start, included).

Scratch project under ``benchmarks/work/pipeline_overhead`` (data, MLflow store, Prefect state).

    .venv/bin/python benchmarks/bench_pipeline_overhead.py [--config FILE] [--repeats 2] [--no-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / "work" / "pipeline_overhead"
RESULT = REPO / "benchmarks" / "results" / "pipeline_overhead.json"
LIMIT = 1.3


def _environment(work: Path) -> dict[str, str]:
    return {
        "DGNN_PROJECT_DIR": str(work),
        "DGNN_DATA_DIR": str(work / "data"),
        "DGNN_DATA_MIRROR": os.environ.get("DGNN_DATA_MIRROR") or str(REPO.parent / "shared" / "datasets"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
        "PREFECT_HOME": str(work / ".prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(work / ".prefect" / "results"),
        "DGNN_RUNS_DIR": str(work / ".dgnn_cache" / "runs"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def in_process(configs: list[str], dataset: str, seed: int, repeats: int) -> dict:
    t0 = time.perf_counter()
    import flows  # noqa: F401
    from dgnn.config import load_config
    from dgnn.experiment import train_seeds
    from flows.pipeline import run_pipeline

    imports = time.perf_counter() - t0
    from prefect.server.api.server import SubprocessASGIServer

    t0 = time.perf_counter()
    SubprocessASGIServer().start(timeout=90)  # the ephemeral server the flow runs use
    server_start = time.perf_counter() - t0

    run_config = load_config(configs[0])
    tiny = run_config.model_dump(mode="json")
    for m in tiny["train"]["modules"]:
        m["steps"] = 5
    tiny["train"]["bp_count"] = 0
    t0 = time.perf_counter()
    run_pipeline(dataset=dataset, task=run_config.train.task, config=tiny, seed=seed, device="cpu")
    warmup = time.perf_counter() - t0  # MLflow store creation, data fetch/propagate, first registration

    cases = []
    for config in configs:
        run_config = load_config(config)
        train_s, run_s, metrics = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            summary = train_seeds(dataset, run_config.train, [seed], device="cpu", verbose=False)
            train_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            piped = run_pipeline(dataset=dataset, task=run_config.train.task, config=config, seed=seed,
                                   device="cpu")
            run_s.append(time.perf_counter() - t0)
            metrics.append({"train_test_acc": summary["test_acc_mean"], "run_test_acc": piped["test_acc_mean"],
                            "run_cached_tasks": piped["cached_tasks"]})
        cases.append({
            "config": _shown(config),
            "module_steps": piped["child_runs"],
            "dgnn_train_s": train_s,
            "dgnn_run_s": run_s,
            "ratio_of_medians": statistics.median(run_s) / statistics.median(train_s),
            "overhead_s_median": statistics.median(run_s) - statistics.median(train_s),
            "same_metrics": all(m["train_test_acc"] == m["run_test_acc"] for m in metrics),
            "runs": metrics,
        })
    return {
        "imports_s": imports,
        "prefect_server_start_s": server_start,
        "warmup_pipeline_run_s": warmup,
        "cases": cases,
    }


def _shown(config: str) -> str:
    path = Path(config)
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def longer_schedule(config: str, work: Path) -> str:
    """The same config with two backward/forward rounds (bp_count 2): 3x the module steps."""
    import yaml

    raw = yaml.safe_load(Path(config).read_text())
    raw["train"]["bp_count"] = 2
    target = work / f"{Path(config).stem}-bp2.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(target)


def whole_commands(config: str, dataset: str, seed: int, env: dict) -> dict:
    dgnn = str(Path(sys.executable).with_name("dgnn"))
    out = {}
    for name, args in (("dgnn_train", ["train", "--seeds", str(seed)]), ("dgnn_run", ["run", "--seed", str(seed)])):
        t0 = time.perf_counter()
        proc = subprocess.run([dgnn, *args, "--dataset", dataset, "--config", config, "--device", "cpu",
                               "--json", "--quiet"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed: {proc.stderr[-2000:]}")
        out[f"{name}_wall_s"] = wall
        out[f"{name}_test_acc"] = json.loads(proc.stdout)["test_acc_mean"]
    out["ratio"] = out["dgnn_run_wall_s"] / out["dgnn_train_wall_s"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="run config (default: the one `dgnn run --dataset cora` uses, "
                                         "configs/cora-classify.yaml; a bp_count=2 variant is also run)")
    parser.add_argument("--only", action="store_true", help="do not add the bp_count=2 variant")
    parser.add_argument("--configs", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-command figures")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.config is None:
        from dgnn.config import default_config_path

        args.config = str(default_config_path(args.dataset, "classify"))
    config = str(Path(args.config).resolve())
    if args.child:
        print(json.dumps(in_process(args.configs.split(","), args.dataset, args.seed, args.repeats)))
        return 0

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    configs = [config] if args.only else [config, longer_schedule(config, WORK)]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "DGNN_"))},
           **_environment(WORK)}
    proc = subprocess.run([sys.executable, __file__, "--child", "--configs", ",".join(configs), "--dataset", args.dataset,
                           "--seed", str(args.seed), "--repeats", str(args.repeats)],
                          env=env, capture_output=True, text=True, cwd=WORK)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return 1
    result = {
        "benchmark": "pipeline_overhead",
        "dataset": args.dataset,
        "config": _shown(config),
        "seed": args.seed,
        "limit_ratio": LIMIT,
        "in_process": json.loads(proc.stdout.strip().splitlines()[-1]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    if not args.no_cli:
        result["whole_commands"] = whole_commands(config, args.dataset, args.seed, env)
    result["within_limit"] = {c["config"]: c["ratio_of_medians"] <= LIMIT for c in result["in_process"]["cases"]}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(result["within_limit"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
