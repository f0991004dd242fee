"""Adapters between the ``dgnn`` library and the tools around it, one sub-room per tool:
:mod:`adapters.mlflow` (tracking, a pipeline run's record, registry, plots, the packaged model),
:mod:`adapters.dvc` (stages, lineage, imports), :mod:`adapters.prefect` (servers, links, cached
results, leftovers of killed runs, serving) and :mod:`adapters.process` (settings, stores,
signals, log levels). A room imports ``dgnn``, its own tool and the rooms it needs; none defines a
Prefect flow or task (those are in :mod:`flows`).

Importing the package changes nothing: the environment defaults of :mod:`adapters.process.settings`
are applied by the entry points (``cli.run_setup.apply_defaults``, the tests' ``conftest``)
before Prefect and MLflow are imported.
"""
