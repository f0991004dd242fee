"""The ``dgnn`` console script: library commands plus the pipeline commands of ``flows``."""

from __future__ import annotations

import functools
import gc
import importlib.util
import sys

from dgnn import cli as train_cli
from dgnn.data import cli as data_cli
from flows import pipeline_cli, propagate_cli, tune_cli


def _import(name, edges, nodes, data_dir):
    """``dgnn import``, versioned by DVC in a DVC workspace (flows.imports loads Prefect: only now)."""
    from flows.imports import import_command

    return import_command(name, edges, nodes, data_dir)


def _registrars() -> list:
    # propagate_cli extends the propagate command of data_cli, so it comes after it.
    data = functools.partial(data_cli.register, importer=_import)
    registrars = [train_cli.register, data, propagate_cli.register, pipeline_cli.register, tune_cli.register]
    if importlib.util.find_spec("flows.lineage") is None:  # the lineage command ships separately
        return registrars
    from flows import lineage

    return [*registrars, lineage.register]


def main(argv: list[str] | None = None) -> int:
    args = train_cli.build_parser(_registrars()).parse_args(argv)
    status = args.handler(args)
    # Exempt what is alive now from the interpreter's last garbage collection: with torch,
    # Prefect and MLflow loaded that traversal alone took 1-2.5 s at exit (2 cores). Everything
    # that must reach disk has been closed or is flushed by atexit handlers, which still run.
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(main())
