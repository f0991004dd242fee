"""Log a benchmark run to MLflow, experiment ``benchmarks``: a parent run with the report, CSVs and
plots as artifacts, and one nested run per (method, dataset) with its metrics.

Tracking URI and artifact location: the project's (:func:`adapters.process.settings.tracking_uri`).
"""

from __future__ import annotations

import json
from pathlib import Path

from cli.run_setup import apply_defaults

EXPERIMENT = "benchmarks"
PARAMS = ("group", "method", "dataset", "nodes", "edges", "features", "status", "seeds_run", "threads",
          "config", "config_sha256", "architecture", "config_origin", "feature_norm", "epochs_planned")


def log_results(results: Path, report: Path, quick: bool = False) -> str:
    apply_defaults()  # before MLflow is imported, as the dgnn command does
    import mlflow

    from benchmarks.report import read_csv

    from adapters.mlflow import tracking
    from adapters.process import settings

    uri = settings.tracking_uri()
    mlflow.set_tracking_uri(uri)
    tracking.ensure_experiment(tracking.client(uri), EXPERIMENT, "benchmark runs: a parent run per run, "
                               "a nested run per (method, dataset)")
    mlflow.set_experiment(EXPERIMENT)
    meta = json.loads((results / "run_meta.json").read_text())
    rows = read_csv(results / "peers.csv") + read_csv(results / "scaling.csv")
    with mlflow.start_run(run_name=f"benchmarks{'-quick' if quick else ''} {meta.get('started', '')}") as parent:
        mlflow.set_tags({"quick": str(quick), "git_commit": meta.get("git_commit", ""),
                         "git_dirty": str(bool(meta.get("git_dirty_files")))})
        mlflow.log_params({"threads": meta.get("threads"), "started": meta.get("started"),
                           "finished": meta.get("finished"), "cpus": meta.get("machine", {}).get("cpus")})
        for name, digest in meta.get("configs", {}).items():
            mlflow.log_param(f"config_sha256/{name}"[:250], digest)
        for row in rows:
            with mlflow.start_run(run_name=f"{row['method']} {row['dataset']}", nested=True):
                mlflow.log_params({k: row.get(k) for k in PARAMS if row.get(k) is not None})
                mlflow.log_metrics({k: float(v) for k, v in row.items()
                                    if isinstance(v, (int, float)) and k not in PARAMS})
        for path in [report, *sorted(results.glob("*.csv")), *sorted(results.glob("*.png")), results / "run_meta.json"]:
            if path.exists():
                mlflow.log_artifact(str(path))
        return parent.info.run_id
