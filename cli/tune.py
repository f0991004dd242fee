"""``dgnn tune``: search configs of a dataset on validation data (Optuna), tracked in MLflow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli import errors
from cli.run_setup import data_dir_of, prepare, with_server
from cli.tune_options import add_tune_arguments, check_budget


def tune_parameters(args: argparse.Namespace) -> dict:
    """The tune flow's parameters from ``dgnn tune`` / ``dgnn run --tune`` arguments."""
    return {"dataset": args.dataset, "task": args.task, "space_file": args.search_space,
            "trials": args.trials, "budget_seconds": args.budget_seconds, "workers": args.workers,
            "dask_address": args.dask_address, "seed": args.seed, "trial_seeds": args.trial_seeds, "split_seed": args.split_seed,
            "device": args.device, "threads": args.threads, "keep": args.keep, "data_dir": data_dir_of(args)}


def _tune(args: argparse.Namespace) -> int:
    problem = check_budget(args)
    if problem:
        return errors.bad_input(problem)
    if status := prepare(args):
        return status
    try:
        from flows.tune import run_tune

        summary, _ = with_server(lambda: run_tune(**tune_parameters(args)), "tune", "finished trials are kept in the study")
    except BaseException as err:  # noqa: BLE001
        return errors.stopped("tune", err, "finished trials are kept in the study; rerun the same command to "
                                           "resume it")
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        shown = " ".join(f"{k}={v:.4f}" for k, v in summary["metrics"].items())
        print(f"best trial {summary['best_trial']} ({summary['candidate'] or 'searched'}): criterion "
              f"{summary['criterion']:.4f}; final {shown}; trials {summary['trials']}")
        kept = "; ".join(f"{name}: {arch}" for name, arch in summary["kept"].items())
        print(f"kept (chosen per seed on validation): {kept}")
        best = Path(summary["best_config_file"])
        where = best.relative_to(Path.cwd()) if best.is_relative_to(Path.cwd()) else best
        print(f"best config: {where} (train it: dgnn run --config {where}); mlflow run {summary['mlflow_run_id']}")
    return 0


def register(subparsers) -> None:
    from cli.train import add_training_arguments

    p = subparsers.add_parser("tune", help="search configs on validation data (Optuna, tracked in MLflow)")
    add_training_arguments(p)
    add_tune_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="training seed of every trial")
    p.set_defaults(handler=_tune)
