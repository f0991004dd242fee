"""Options shared by ``dgnn tune`` and ``dgnn run --tune``."""

from __future__ import annotations

import argparse


def check_budget(args: argparse.Namespace) -> str | None:
    if args.trials is None and args.budget_seconds is None:
        args.trials = 20
    if args.trial_seeds < 1:
        return "--trial-seeds must be at least 1"
    if args.keep < 1:
        return "--keep must be at least 1"
    if args.trials is not None and args.trials < 1:
        return "--trials must be at least 1"
    if args.budget_seconds is not None and args.budget_seconds <= 0:
        return "--budget-seconds must be positive"
    return None


def add_tune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--search-space", help="search-space YAML (default configs/search/<task>.yaml)")
    p.add_argument("--trials", type=int, help="finished trials the study should hold (default 20 "
                                              "when no --budget-seconds; earlier runs count)")
    p.add_argument("--budget-seconds", type=float, help="stop starting trials after this long")
    p.add_argument("--trial-seeds", type=int, default=1,
                   help="seeds each trial trains with (--seed, --seed+1, ...); the score is their mean")
    p.add_argument("--keep", type=int, default=3, help="best configs the result keeps; each training "
                   "seed uses the one of them with the best validation score (1: the best only)")
    p.add_argument("--workers", type=int, default=1, help="parallel trial workers on a local Dask cluster")
    p.add_argument("--dask-address", help="tcp://host:port of a dask.distributed scheduler for the workers "
                                          "(`dgnn run`: also for the propagation row blocks)")
