"""Prefect flows and tasks around the ``dgnn`` library: thin, they call the library and
:mod:`adapters` (importing it applies the project's environment defaults first)."""

import adapters  # noqa: F401
