"""The ``dgnn`` console script: library commands plus the pipeline commands of ``flows``."""

from __future__ import annotations

import sys

from dgnn import cli as train_cli
from dgnn.data import cli as data_cli


def main(argv: list[str] | None = None) -> int:
    args = train_cli.build_parser([train_cli.register, data_cli.register]).parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
