"""A pipeline run as its Prefect tasks see it: the library's :class:`~dgnn.stepwise.StepwiseRun`
plus where MLflow records it and what the registry compares."""

from __future__ import annotations

from dataclasses import dataclass, field

from dgnn.stepwise import StepwiseRun


@dataclass(frozen=True)
class TrackedRun:
    run: StepwiseRun
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    data_version: str
    threads: int
    model_identity: dict = field(default_factory=dict)  # data and config hashes (adapters.mlflow.registry)
    model_tags: dict = field(default_factory=dict)  # tune and portfolio provenance of the model
