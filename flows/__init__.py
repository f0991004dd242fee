"""Prefect flows and MLflow tracking around the ``dgnn`` library (thin: the logic lives in ``dgnn``)."""
