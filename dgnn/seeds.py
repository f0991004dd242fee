"""Train one config over several seeds and summarise: what ``dgnn train`` and the benchmarks run."""

from __future__ import annotations

import sys
import tempfile
from typing import Callable

import torch

from dgnn.config import Portfolio, TrainConfig
from dgnn.data.fetch import ensure_graph
from dgnn.data.stage_folders import read_meta
from dgnn.inputs import Inputs, load_inputs
from dgnn.metrics import mean_std
from dgnn.node_store import out_of_core_for
from dgnn.results import FitResult, PassResult, StepResult
from dgnn.step_progress import done_line
from dgnn.threads import apply_threads
from dgnn.tune.portfolio import choose

CLASSIFY_METRICS = ("test_acc", "val_acc", "macro_f1", "roc_auc")
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


def progress_printer(seed: int, stream=sys.stderr) -> tuple[Callable, Callable]:
    """Callbacks printing one line per module step and per forward pass."""

    def on_step(r: StepResult) -> None:
        print(f"[seed {seed}] {r.step.name}: {done_line(r.steps_run, r.losses[-1], r.val_metric, r.seconds)}",
              file=stream, flush=True)

    def on_pass(p: PassResult) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in p.metrics.items())
        print(f"[seed {seed}] pass {p.pass_index}: {shown}{' *best*' if p.is_best else ''}",
              file=stream, flush=True)

    return on_step, on_pass


def train_one(inputs: Inputs, config: TrainConfig, seed: int, device, verbose: bool,
              out_of_core: bool = False) -> FitResult:
    """One seed's fit; ``out_of_core``: node tensors in a temporary folder, removed after."""
    on_step, on_pass = progress_printer(seed) if verbose else (None, None)
    if not out_of_core:
        return inputs.trainer(config, seed, device).fit(on_step=on_step, on_pass=on_pass)
    with tempfile.TemporaryDirectory(prefix="dgnn-nodes-") as folder:
        store = inputs.disk_store(folder, device)
        return inputs.trainer(config, seed, device, store=store).fit(on_step=on_step, on_pass=on_pass)


def fit_warnings(result: FitResult, num_classes: int) -> list[str]:
    """Plain-language warnings when a classifier did not learn: it fits under half of its own
    training nodes, or it is within 10 points of chance on validation."""
    if result.task != "classify":
        return []
    chance = 1 / max(num_classes, 1)
    train_acc, val_acc = result.metrics["train_acc"], result.metrics["val_acc"]
    advice = "the config is too weak or too regularised for this graph: try `dgnn tune`"
    warnings = []
    if train_acc < 0.5:
        warnings.append(f"the model fits only {train_acc:.1%} of its training nodes; {advice}")
    if val_acc < chance + 0.1:
        warnings.append(f"validation accuracy {val_acc:.1%} is near chance ({chance:.1%}); {advice}")
    return warnings


def summarise(dataset: str, task: str, seeds: list[int], results: list[FitResult], num_classes: int,
              chosen: list | None = None) -> dict:
    """Mean and standard deviation of every metric over seeds, plus per-seed rows and warnings.

    ``chosen``: per seed, the portfolio :class:`~dgnn.tune.portfolio.Choice` the result came from.
    """
    names = CLASSIFY_METRICS if task == "classify" else CLUSTER_METRICS
    summary: dict = {"dataset": dataset, "task": task, "seeds": seeds}
    for name in (*names, "train_seconds"):
        # roc_auc is missing where a test split holds a single class (it is undefined there)
        values = [r.train_seconds if name == "train_seconds" else r.metrics.get(name) for r in results]
        summary[f"{name}_mean"], summary[f"{name}_std"] = mean_std(values)
    summary["per_seed"] = [
        {"seed": s, "best_pass": r.best_pass, "train_seconds": r.train_seconds, **r.metrics}
        for s, r in zip(seeds, results)
    ]
    if chosen:
        for row, choice in zip(summary["per_seed"], chosen):
            row |= {"chosen": choice.name, "candidate_criteria": choice.scores,
                    "select_seconds": choice.seconds, "levers": choice.config.levers()}
        summary["chosen"] = [c.name for c in chosen]
    summary["warnings"] = sorted({w for r in results for w in fit_warnings(r, num_classes)})
    return summary


def train_seeds(dataset: str, config: TrainConfig | Portfolio, seeds: list[int], *, device=None,
                data_dir=None, split_seed: int = 0, verbose: bool = True, threads: int | None = None,
                out_of_core: str = "auto") -> dict:
    """Train ``config`` on ``dataset`` once per seed; return :func:`summarise`'s dictionary plus
    ``threads``, the torch thread count used (``threads`` or :func:`dgnn.threads.choose_threads`'s).

    A :class:`~dgnn.config.Portfolio` trains every candidate per seed and keeps the one with the
    best validation criterion for that seed. ``out_of_core``: "on", "off" or "auto"
    (:func:`dgnn.node_store.out_of_core_for`; a portfolio trains in memory).
    """
    device = resolve_device(device)
    meta = read_meta(ensure_graph(dataset, data_dir))
    on_disk = isinstance(config, TrainConfig) and out_of_core_for(out_of_core, meta["nodes"], meta["features"], config)
    inputs = load_inputs(dataset, data_dir, split_seed, mapped=on_disk)
    apply_threads(inputs.graph.num_nodes, threads)
    num_classes = inputs.graph.num_classes
    if isinstance(config, Portfolio):
        chosen = [choose(inputs, config, seed, device, verbose) for seed in seeds]
        summary = summarise(dataset, config.task, seeds, [c.result for c in chosen], num_classes, chosen)
    else:
        results = [train_one(inputs, config, seed, device, verbose, on_disk) for seed in seeds]
        summary = summarise(dataset, config.task, seeds, results, num_classes) | {
            "architecture": config.describe(), "levers": config.levers()}
    # read back, not the requested count: what training actually ran with
    return summary | {"threads": torch.get_num_threads(), "out_of_core": on_disk}
