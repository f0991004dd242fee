"""The ``dgnn`` console script: library commands plus the pipeline commands of ``flows``."""

from __future__ import annotations

import importlib.util
import sys

from dgnn import cli as train_cli
from dgnn.data import cli as data_cli
from flows import pipeline_cli


def _registrars() -> list:
    registrars = [train_cli.register, data_cli.register, pipeline_cli.register]
    if importlib.util.find_spec("flows.lineage") is None:  # the lineage command ships separately
        return registrars
    from flows import lineage

    return [*registrars, lineage.register]


def main(argv: list[str] | None = None) -> int:
    args = train_cli.build_parser(_registrars()).parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
