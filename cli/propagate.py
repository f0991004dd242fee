"""``dgnn propagate ... --dask-workers N | --dask-address tcp://host:port``: the data layer's
propagate command with its row blocks on Dask (:mod:`flows.dask_propagate`, imported only then, so
the command stays fast without these options)."""

from __future__ import annotations

import argparse
import os

from cli import data as data_cli, errors


def _on_dask(args: argparse.Namespace):
    from flows.dask_propagate import run_propagate

    return run_propagate(args.name, args.orders, feature_norm=args.feature_norm, block_rows=args.block_rows,
                         data_dir=args.data_dir, address=args.dask_address, workers=args.dask_workers or 2)


def register(subparsers) -> None:
    """Give the ``propagate`` command that :func:`cli.data.register` added the Dask options."""
    p = subparsers.choices["propagate"]
    p.add_argument("--dask-workers", type=int, metavar="N",
                   help="run the row blocks as tasks on a local Dask cluster of N worker processes")
    # $DGNN_DASK_ADDRESS (flows.dask_cluster.ADDRESS_ENV): set by `dgnn run` on Dask for the DVC stage
    p.add_argument("--dask-address", default=os.environ.get("DGNN_DASK_ADDRESS"),
                   help="tcp://host:port of a dask.distributed scheduler for the row blocks "
                        "(its workers must see the data folder under the same path)")
    in_process = p.get_default("handler")
    on_dask = errors.guarded(lambda a: data_cli.report_stage(_on_dask(a), a.json))
    p.set_defaults(handler=lambda a: on_dask(a) if a.dask_workers or a.dask_address else in_process(a))
