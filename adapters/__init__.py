"""Adapters between the ``dgnn`` library and the tools around it: MLflow (tracking, registry,
plots, the packaged model), DVC (stages, lineage, imports), the Prefect API (servers, links,
cached results, leftovers of killed runs) and the process (settings, signals, log levels).
None defines a Prefect flow or task; those are in :mod:`flows`.

Importing the package changes nothing: the environment defaults of :mod:`adapters.settings` are
applied by the entry points (``cli.run_setup.apply_defaults``, the tests' ``conftest``) before
Prefect and MLflow are imported.
"""
