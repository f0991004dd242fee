"""Overhead of the tracked pipeline: ``dgnn run`` versus ``dgnn train`` on Cora, same config and seed.

Both run in this repository as the project (``DGNN_PROJECT_DIR``): the data come from its DVC
stages in ``data/`` and the pipeline checks them against ``dvc.lock``, as ``make run`` does. Only
the MLflow store, the Prefect state and the step checkpoints go to ``benchmarks/work/pipeline_overhead``.

Two figures per config, both in ``results/pipeline_overhead.json``:

* in-process: one Python process imports everything, starts the ephemeral Prefect server and
  makes a warm-up run (creating the MLflow store); these one-time costs are reported apart.
  Then it alternates ``train_seeds`` (what ``dgnn train`` runs) and ``run_pipeline`` (what
  ``dgnn run`` runs: data tasks, a task and an MLflow child run per module step, evaluate, plots,
  model logging and registration) ``--repeats`` times; ratio = median / median;
* whole commands: ``dgnn train --json`` and ``dgnn run --json`` as fresh processes, ``--repeats``
  times each. ``dgnn run`` starts the ephemeral server on a thread and reports how long it spent
  blocked on it (``prefect_ephemeral_server.blocked_s``: the server module's import plus the wait);
  ``run_without_server_s`` is the wall time minus that, so the start-up work it overlapped still
  counts against ``dgnn run``. Also ``dgnn run`` with ``PREFECT_API_URL`` naming a Prefect
  server started once beforehand (``ratio_running_server``): no server start to subtract, and
  nothing to hide behind one.

Configs: the shipped ``configs/cora-classify.yaml`` (one module step), the same with
``bp_count: 2`` (five steps) and the authors' schedule ``configs/paper-cora-classify.yaml``
(33 steps); the whole commands also run the CSBM scaling config on ``synthetic-csbm-100k``
(9 steps, node-sized checkpoints of 100k rows). A least-squares line through the in-process
overheads gives the fixed and per-step parts.

    .venv/bin/python benchmarks/bench_pipeline_overhead.py [--repeats 3] [--no-cli]   # ~10 min
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
DGNN = str(Path(sys.executable).with_name("dgnn"))  # the console script of this environment
# A larger graph for the whole commands: the CSBM scaling config on 100k nodes (3 modules, 9 steps).
SCALE_CONFIG = REPO / "benchmarks" / "configs" / "csbm-dgnn.yaml"
SCALE_DATASET = "synthetic-csbm-100k"


def _environment(work: Path) -> dict[str, str]:
    return {
        "DGNN_PROJECT_DIR": str(REPO),
        "DGNN_DATA_MIRROR": os.environ.get("DGNN_DATA_MIRROR") or str(REPO.parent / "shared" / "datasets"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
        "PREFECT_HOME": str(work / ".prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(work / ".prefect" / "results"),
        "DGNN_RUNS_DIR": str(work / ".dgnn_cache" / "runs"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def in_process(configs: list[str], dataset: str, seed: int, repeats: int) -> dict:
    t0 = time.perf_counter()
    from cli.run_setup import apply_defaults

    apply_defaults()  # before Prefect and MLflow are imported, as the dgnn command does
    from dgnn.config import load_config
    from dgnn.seeds import train_seeds
    from flows.pipeline import run_pipeline

    imports = time.perf_counter() - t0
    from prefect.server.api.server import SubprocessASGIServer

    t0 = time.perf_counter()
    SubprocessASGIServer().start(timeout=90)  # the ephemeral server the flow runs use
    server_start = time.perf_counter() - t0

    t0 = time.perf_counter()
    run_pipeline(dataset=dataset, task="classify", config=configs[0], seed=seed, device="cpu")
    warmup = time.perf_counter() - t0  # MLflow store creation, data stages, first registration

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
        "overhead_fit": _fit([(c["module_steps"], c["overhead_s_median"]) for c in cases]),
    }


def _fit(points: list[tuple[int, float]]) -> dict:
    """Least-squares overhead = fixed + per_step * steps."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0
    return {"fixed_s": mean_y - slope * mean_x, "per_step_s": slope}


def _shown(config: str) -> str:
    path = Path(config)
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def longer_schedule(config: str, work: Path) -> str:
    """The same config with two backward/forward rounds (bp_count 2): 5x the module steps."""
    import yaml

    raw = yaml.safe_load(Path(config).read_text())
    raw["train"]["bp_count"] = 2
    target = work / f"{Path(config).stem}-bp2.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(target)


def whole_commands(config: str, dataset: str, seed: int, env: dict, repeats: int, api: str) -> dict:
    """``dgnn train``, ``dgnn run`` (ephemeral server) and ``dgnn run`` against the running server
    at ``api`` as fresh processes, alternated ``repeats`` times."""
    commands = {"dgnn_train": (["train", "--seeds", str(seed)], env),
                "dgnn_run": (["run", "--seed", str(seed)], env),
                "dgnn_run_running_server": (["run", "--seed", str(seed)], {**env, "PREFECT_API_URL": api})}
    walls: dict[str, list[float]] = {name: [] for name in commands}
    blocked, started, accuracy = [], [], {}
    for _ in range(repeats):
        for name, (args, command_env) in commands.items():
            t0 = time.perf_counter()
            proc = subprocess.run([DGNN, *args, "--dataset", dataset, "--config", config, "--device", "cpu",
                                   "--json", "--quiet"], env=command_env, capture_output=True, text=True, cwd=REPO)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed: {proc.stderr[-2000:]}")
            out = json.loads(proc.stdout)
            walls[name].append(wall)
            accuracy[f"{name}_test_acc"] = out["test_acc_mean"]
            if name == "dgnn_run":
                blocked.append(out["prefect_ephemeral_server"]["blocked_s"])
                started.append(out["prefect_ephemeral_server"]["start_s"])
    without = [w - b for w, b in zip(walls["dgnn_run"], blocked)]
    train = statistics.median(walls["dgnn_train"])
    return {
        "config": _shown(config),
        "dgnn_train_wall_s": walls["dgnn_train"],
        "dgnn_run_wall_s": walls["dgnn_run"],
        "run_server_start_s": started,
        "run_server_blocked_s": blocked,
        "run_without_server_s": without,
        "dgnn_run_running_server_wall_s": walls["dgnn_run_running_server"],
        "ratio_without_server": statistics.median(without) / train,
        "ratio_with_server": statistics.median(walls["dgnn_run"]) / train,
        "ratio_running_server": statistics.median(walls["dgnn_run_running_server"]) / train,
        **accuracy,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-command figures")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(in_process(args.child.split(","), args.dataset, args.seed, args.repeats)))
        return 0

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    shipped = str(REPO / "configs" / f"{args.dataset}-classify.yaml")
    paper = REPO / "configs" / f"paper-{args.dataset}-classify.yaml"
    configs = [shipped, longer_schedule(shipped, WORK), *([str(paper)] if paper.exists() else [])]
    from adapters.process import settings  # not at the top: the --child run of this file times its imports

    env = {**settings.without_tool_settings(),
           **_environment(WORK)}
    proc = subprocess.run([sys.executable, __file__, "--child", ",".join(configs), "--dataset", args.dataset,
                           "--seed", str(args.seed), "--repeats", str(args.repeats)],
                          env=env, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return 1
    result = {
        "benchmark": "pipeline_overhead",
        "dataset": args.dataset,
        "seed": args.seed,
        "limit_ratio": LIMIT,
        "in_process": json.loads(proc.stdout.strip().splitlines()[-1]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
    }
    if not args.no_cli:
        from adapters.prefect.server import prefect_server

        cases = [(c, args.dataset) for c in (shipped, *([str(paper)] if paper.exists() else []))]
        cases.append((str(SCALE_CONFIG), SCALE_DATASET))
        build = [DGNN, "train", "--dataset", SCALE_DATASET, "--config", str(SCALE_CONFIG), "--device", "cpu",
                 "--quiet"]
        subprocess.run(build, env=env, check=True, capture_output=True, cwd=REPO)  # data built once, untimed
        with prefect_server(port=None, env=_environment(WORK)) as api:  # its state in WORK too
            result["whole_commands"] = [{"dataset": dataset, **whole_commands(c, dataset, args.seed, env,
                                                                              args.repeats, api)}
                                        for c, dataset in cases]
    result["within_limit"] = {
        **{f"in-process {c['config']}": c["ratio_of_medians"] <= LIMIT for c in result["in_process"]["cases"]},
        **{f"whole command {c['config']}, {kind}": c[f"ratio_{kind}"] <= LIMIT
           for c in result.get("whole_commands", []) for kind in ("without_server", "running_server")},
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(result["within_limit"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
