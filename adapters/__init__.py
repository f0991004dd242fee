"""Adapters between the ``dgnn`` library and the tools around it: MLflow (tracking, registry,
plots, the packaged model), DVC (stages, lineage, imports), the Prefect API (servers, links,
cached results, leftovers of killed runs) and the process (settings, signals, log levels).
None defines a Prefect flow or task; those are in :mod:`flows`.

Importing the package applies the environment defaults of :mod:`adapters.settings` (only
variables that are unset), so Prefect and MLflow, imported later, keep their state under the
project.
"""

from adapters.settings import apply_defaults as _apply_defaults

_apply_defaults()
