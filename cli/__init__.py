"""The ``dgnn`` command: one parser tree (:mod:`cli.main`), one module per group of commands.

Library commands (``train``, the data stages) import neither Prefect nor MLflow; the pipeline
commands import them inside their handlers.
"""
