"""``dgnn lineage RUN_ID``: print a run's lineage (:func:`adapters.dvc.lineage.lineage`) and whether
the workspace still matches it.

Exit status: 0 when the workspace matches the run ("matches"), 1 when anything differs
("DIFFERS: ..." lists each difference and how to get the run's data back), 2 when the run cannot
be read.
"""

from __future__ import annotations

import argparse
import json

from cli import errors


def _print(report: dict) -> None:
    rows = [("run", f"{report['run_id']} ({report['run_name']})"), ("dataset", report["dataset"]),
            ("task", report["task"]), ("git commit", report["git_commit"]),
            ("data version", report["data_version"]), ("content hash", report["data_content_hash"])]
    for label, value in rows:
        print(f"{label:<14}{value}")
    print("dvc stages")
    for stage, value in report["stages"].items():
        print(f"  {stage:<22}{value}")
    print("params")
    for key, value in report["params"].items():
        print(f"  {key} = {value}")
    if report["workspace"] == "matches":
        print(f"workspace     matches (dvc.lock and the files under {report['project']}/data)")
    else:
        print("workspace     DIFFERS: " + "; ".join(report["differences"]))
        commit = report["git_commit"] or "<the run's commit>"
        print(f"  to get the run's data back: `git checkout {commit} -- dvc.lock params.yaml` then "
              "`dvc checkout` (or `dvc pull`; `dvc repro` rebuilds what no cache or remote has)")
    for note in report["notes"]:
        print(f"note          {note}")


def _handler(args: argparse.Namespace) -> int:
    try:
        from adapters.dvc.lineage import lineage  # here: loads MLflow and the project settings

        report = lineage(args.run_id, args.project_dir, args.tracking_uri)
    except Exception as err:  # run not found, store unreadable, dvc failing: one line, exit 2
        return errors.bad_input(f"cannot read the lineage of run {args.run_id}: {errors.one_line(err)}")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0 if report["workspace"] == "matches" else 1


def register(subparsers) -> None:
    """Add ``lineage`` to the ``dgnn`` parser."""
    p = subparsers.add_parser(
        "lineage", help="data, stage hashes, commit and params of a tracked run; does the workspace match?",
        description="Reads the MLflow run and compares the data it recorded (dataset, DVC stage hashes, "
                    "content hash) with dvc.lock and the files of the workspace.")
    p.add_argument("run_id", metavar="RUN",
                   help="the pipeline's parent run: its MLflow run id, a unique prefix of it, or its name")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--project-dir", help="project folder (default: $DGNN_PROJECT_DIR or the current folder)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the project's store)")
    p.set_defaults(handler=_handler)
