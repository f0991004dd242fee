"""``dgnn train``: train with the library alone (no Prefect, no MLflow) and print a JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli import errors
from dgnn.config import Portfolio, resolve_config


def run_config(args: argparse.Namespace):
    """The run config named by ``--config`` or shipped for the dataset and task, CLI overrides applied."""
    from dgnn.data.fetch import dataset_kind  # here: the data layer loads torch (`dgnn --help` does not)
    from dgnn.data.layout import dataset_dir
    from dgnn.memory import check_fits

    dataset_dir(args.dataset)  # a name no file system can hold is refused before it names a file
    dataset_kind(args.dataset, args.data_dir)  # an unknown name, before any server starts
    config = resolve_config(args.dataset, args.task, args.config)
    for train in config.candidates.values() if isinstance(config, Portfolio) else [config.train]:
        check_fits(args.dataset, train, getattr(args, "out_of_core", "auto"), args.data_dir)
    return config


def _train(args: argparse.Namespace) -> None:
    from dgnn.seeds import parse_seeds, train_seeds

    config = run_config(args)
    train = config if isinstance(config, Portfolio) else config.train
    summary = train_seeds(args.dataset, train, parse_seeds(args.seeds), device=args.device,
                          data_dir=args.data_dir, split_seed=args.split_seed, verbose=not args.quiet,
                          threads=args.threads, out_of_core=args.out_of_core)
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.metrics:
        _write_metrics(Path(args.metrics), summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        keys = [k for k in summary if k.endswith("_mean")]
        print(" ".join(f"{k}={summary[k]:.4f}" for k in keys))


def _write_metrics(path: Path, summary: dict) -> None:
    """The summary's means and standard deviations over seeds as one flat JSON object: the file a
    DVC stage declares under ``metrics:`` (``dvc metrics show``, ``dvc exp show``)."""
    metrics = {k: v for k, v in summary.items() if k.endswith(("_mean", "_std")) and v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def add_out_of_core_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-of-core", choices=["auto", "on", "off"], default="auto",
                   help="keep node tensors (propagated inputs, module outputs) in files, read by row blocks: "
                        "auto (default) does so when they would fill half of the available memory")


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that trains (train, run, sweep)."""
    p.add_argument("--dataset", default="cora", help="catalogue, synthetic or imported dataset name")
    p.add_argument("--task", choices=["classify", "cluster"], default="classify")
    p.add_argument("--config", help="YAML run config (default: configs/<dataset>-<task>.yaml)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--data-dir", help="data folder (default: $DGNN_DATA_DIR or ./data)")
    p.add_argument("--split-seed", type=int, default=0, help="split seed for stratified datasets")
    p.add_argument("--threads", type=_positive_int, help="torch threads (default: $DGNN_THREADS, "
                   "$OMP_NUM_THREADS, else chosen from the graph size: see dgnn.threads)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train with the library only and report test metrics")
    add_training_arguments(p)
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0-9 or 0,3,5")
    p.add_argument("--metrics", metavar="FILE", help="also write the means and standard deviations over seeds "
                                                     "to FILE as JSON (the DVC train stage's metrics file)")
    add_out_of_core_argument(p)
    p.set_defaults(handler=errors.guarded(_train))
