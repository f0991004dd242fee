"""Prefect flows and MLflow tracking around the ``dgnn`` library (thin: the logic lives in ``dgnn``).

Importing the package applies the environment defaults of :mod:`flows.settings` (only variables
that are unset), so Prefect and MLflow, imported later, keep their state under the project.
"""

from flows.settings import apply_defaults as _apply_defaults

_apply_defaults()
