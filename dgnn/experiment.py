"""Train one config over several seeds and summarise: what ``dgnn train`` and the benchmarks run."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from typing import Callable

import torch

from dgnn.config import TrainConfig
from dgnn.data import load_adjacency, load_graph, stored_propagated
from dgnn.nn.filters import graph_filter
from dgnn.propagation import normalize_features
from dgnn.trainer import DecoupledTrainer, FitResult, PassResult, StepResult

CLASSIFY_METRICS = ("test_acc", "val_acc", "macro_f1")
CLUSTER_METRICS = ("acc", "nmi", "ari", "modularity")


MAX_SEED = 2**32 - 1  # the largest seed k-means (sklearn's random_state) accepts


def parse_seeds(text: str) -> list[int]:
    """'0-9' -> 0..9, '1,3,5' -> [1, 3, 5], '4' -> [4]; ranges ascending, seeds 0..MAX_SEED."""
    seeds: list[int] = []
    for part in text.split(","):
        start, dash, end = part.strip().partition("-")
        try:
            first, last = int(start), int(end if dash else start)
        except ValueError:
            raise ValueError(f"bad seed list {text!r}: use e.g. 0-9 or 0,2,4") from None
        if not 0 <= last <= MAX_SEED:
            raise ValueError(f"bad seed list {text!r}: seed {last} is out of range, use 0..{MAX_SEED}")
        if first > last:
            raise ValueError(f"bad seed list {text!r}: range {part.strip()} is reversed, write {last}-{first}")
        seeds += range(first, last + 1)
    return seeds


def resolve_device(device: str | None) -> torch.device:
    """'auto' (or None) picks CUDA when present; an explicit CUDA request without CUDA is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    return resolved


@dataclass
class Inputs:
    """What the trainer needs from the data stages: the graph, Â, and P_1 = g_1(Â) N(X)."""

    graph: object
    adj: torch.Tensor
    first_input: torch.Tensor


def load_inputs(dataset: str, config: TrainConfig, data_dir=None, split_seed: int = 0) -> Inputs:
    """Read (building when missing) the stored graph, adjacency and module-1 propagated features.

    P_1 = g_1(Â) N(X) is computed once here for every seed: read from the propagate stage when it
    stored that power and normalisation, else filtered in memory (the stage's DVC-tracked output
    is never rewritten).
    """
    graph = load_graph(dataset, data_dir=data_dir, split_seed=split_seed)
    adj = load_adjacency(dataset, data_dir=data_dir)
    module = config.modules[0]
    first = None
    if module.filter == "power":
        first = stored_propagated(dataset, module.order, data_dir=data_dir, feature_norm=config.feature_norm)
    if first is None:
        x = normalize_features(graph.x.float(), config.feature_norm)
        first = graph_filter(adj, x, module.order, module.filter, module.alpha)
    return Inputs(graph, adj, first)


def progress_printer(seed: int, stream=sys.stderr) -> tuple[Callable, Callable]:
    """Callbacks printing one line per module step and per forward pass."""

    def on_step(r: StepResult) -> None:
        val = "" if r.val_metric is None else f" val_acc={r.val_metric:.3f}"
        print(f"[seed {seed}] {r.step.name}: {r.steps_run} steps, loss {r.losses[-1]:.4f}{val}"
              f" ({r.seconds:.2f}s)", file=stream, flush=True)

    def on_pass(p: PassResult) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in p.metrics.items())
        print(f"[seed {seed}] pass {p.pass_index}: {shown}{' *best*' if p.is_best else ''}",
              file=stream, flush=True)

    return on_step, on_pass


def train_one(inputs: Inputs, config: TrainConfig, seed: int, device, verbose: bool) -> FitResult:
    trainer = DecoupledTrainer(inputs.graph, config, seed=seed, device=device, adj=inputs.adj,
                               first_input=inputs.first_input)
    on_step, on_pass = progress_printer(seed) if verbose else (None, None)
    return trainer.fit(on_step=on_step, on_pass=on_pass)


def summarize(dataset: str, config: TrainConfig, seeds: list[int], results: list[FitResult]) -> dict:
    """Mean and standard deviation of every metric over seeds, plus per-seed rows."""
    names = CLASSIFY_METRICS if config.task == "classify" else CLUSTER_METRICS
    summary: dict = {"dataset": dataset, "task": config.task, "seeds": seeds}
    for name in (*names, "train_seconds"):
        values = [r.train_seconds if name == "train_seconds" else r.metrics[name] for r in results]
        summary[f"{name}_mean"] = statistics.fmean(values)
        summary[f"{name}_std"] = statistics.pstdev(values)
    summary["per_seed"] = [
        {"seed": s, "best_pass": r.best_pass, "train_seconds": r.train_seconds, **r.metrics}
        for s, r in zip(seeds, results)
    ]
    return summary


def train_seeds(dataset: str, config: TrainConfig, seeds: list[int], *, device=None, data_dir=None,
                split_seed: int = 0, verbose: bool = True) -> dict:
    """Train ``config`` on ``dataset`` once per seed; return :func:`summarize`'s dictionary."""
    device = resolve_device(device)
    inputs = load_inputs(dataset, config, data_dir, split_seed)
    results = [train_one(inputs, config, seed, device, verbose) for seed in seeds]
    return summarize(dataset, config, seeds, results)
