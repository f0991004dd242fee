"""Command line for the data layer: ``fetch``, ``import``, ``normalise`` and ``propagate``.

:func:`register` adds the subcommands to the project's ``dgnn`` parser; each sets ``handler``,
called as ``args.handler(args)`` and returning the exit status (:mod:`cli.errors`: 2 with a
one-line error on bad input, a :class:`~dgnn.data.DataError` included). The DVC stages run them
as ``python -m cli.main fetch|normalise|propagate``.
"""

from __future__ import annotations

import argparse
import json
import sys

from cli import errors
from dgnn.config import FEATURE_NORMS

# The data layer (torch and pandas) is imported by the handlers, not here: `dgnn --help` and
# argument errors answer without it.


def _report(result, as_json: bool) -> None:
    if as_json:
        print(result.to_json())
    else:
        print(
            f"{result.name}: {result.nodes} nodes, {result.edges} edges, {result.features} features, "
            f"{result.classes} classes -> {result.path} (content hash {result.content_hash})"
        )


def report_stage(folder, as_json: bool) -> None:
    from dgnn.data.stage_folders import read_meta

    record = {"path": str(folder.resolve()), "content_hash": read_meta(folder)["content_hash"]}
    print(json.dumps(record, indent=2) if as_json else f"{record['path']} ({record['content_hash']})")


def _fetch(a: argparse.Namespace) -> None:
    from dgnn.data.fetch import fetch

    _report(fetch(a.name, a.data_dir, a.mirror, a.split_seed), a.json)


def _import(a: argparse.Namespace, importer) -> None:
    if importer is None:
        from dgnn.data.user_import import import_graph as importer
    _report(importer(a.name, a.edges, a.nodes, a.data_dir), a.json)


def _normalise(a: argparse.Namespace) -> None:
    from dgnn.data.stages import normalise_stage

    report_stage(normalise_stage(a.name, a.data_dir), a.json)


def _propagate(a: argparse.Namespace) -> None:
    from dgnn.data.stages import propagate_stage

    report_stage(propagate_stage(a.name, a.orders, a.data_dir, a.block_rows, a.feature_norm,
                                 on_hop=lambda line: print(line, file=sys.stderr, flush=True)), a.json)


def register(subparsers, importer=None) -> None:
    """Add the data subcommands to an ``argparse`` subparsers object.

    ``importer(name, edges, nodes, data_dir)`` runs ``import`` and returns its
    :class:`~dgnn.data.layout.FetchResult` (default :func:`dgnn.data.user_import.import_graph`;
    the ``dgnn`` command passes one that also versions the graph with DVC).
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data folder (default: $DGNN_DATA_DIR or ./data)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")

    p = subparsers.add_parser("fetch", parents=[common], help="fetch, verify and store a dataset")
    p.add_argument("name", help="catalogue name, synthetic-csbm-[hard-]<nodes>, or an imported name")
    p.add_argument("--mirror", help="folder laid out like shared/datasets (default: $DGNN_DATA_MIRROR, "
                   "else ../shared/datasets if present, else download)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the stratified split")
    p.set_defaults(handler=errors.guarded(_fetch))

    p = subparsers.add_parser("import", parents=[common], help="import a user graph (CSV or Parquet)")
    p.add_argument("name", help="name the graph will be known by")
    p.add_argument("--edges", required=True, help="edges file (a path, or a URL that DVC reads: https://, s3://, "
                                                  "...): src, dst[, weight]")
    p.add_argument("--nodes", required=True, help="nodes file (a path or URL): node_id, features...[, label][, split]")
    p.set_defaults(handler=errors.guarded(lambda a: _import(a, importer),
        kept="the import was undone: data/, params.yaml, dvc.lock and imports/ are as they were; rerun the same command"))

    p = subparsers.add_parser("normalise", parents=[common], help="store the normalised adjacency")
    p.add_argument("name")
    p.set_defaults(handler=errors.guarded(_normalise))

    p = subparsers.add_parser("propagate", parents=[common], help="store A^k X for the given orders")
    p.add_argument("name")
    p.add_argument("--orders", type=int, nargs="+", required=True, help="e.g. --orders 1 2")
    p.add_argument("--block-rows", type=int, help="rows per block (bounded memory)")
    p.add_argument("--feature-norm", "--feature_norm", dest="feature_norm", choices=FEATURE_NORMS,
                   default="none", help="feature normalisation before propagating (the trainer's feature_norm)")
    p.set_defaults(handler=errors.guarded(_propagate))
