"""The ``dgnn`` console script: the one parser tree of every command."""

from __future__ import annotations

import argparse
import functools
import gc
import sys

from cli import data, lineage, pipeline, propagate, run_setup, train, tune


def _import(name, edges, nodes, data_dir):
    """``dgnn import``, versioned by DVC in a DVC workspace (the adapter is imported only now);
    SIGTERM leaves like Ctrl-C, through the import's undo."""
    from adapters.dvc.imports import import_command
    from adapters.process.interrupts import sigterm_raising

    with sigterm_raising():
        return import_command(name, edges, nodes, data_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgnn", description="Decoupled GNN training pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    # propagate extends the propagate command of data, so it comes after it.
    for register in (train.register, functools.partial(data.register, importer=_import), propagate.register,
                     pipeline.register, tune.register, lineage.register):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_setup.apply_defaults()
    status = args.handler(args)
    # Exempt what is alive now from the interpreter's last garbage collection: with torch,
    # Prefect and MLflow loaded that traversal alone took 1-2.5 s at exit (2 cores). Everything
    # that must reach disk has been closed or is flushed by atexit handlers, which still run.
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(main())
