"""Tuned DGNN against tuned peers: every method gets the same wall-clock search budget (issue 19).

Per dataset (Planetoid's public split, else the stratified 20/30-per-class split of split seed 0;
row-normalised features for every method), in one process with one torch thread, one method after
another:

* each peer (``benchmarks/peers``) gets an Optuna TPE search seeded with the first trial seed, on
  validation accuracy (classification) or a label-free criterion (clustering), of
  ``--budget-seconds``; its best config is then trained with every ``--seeds`` seed;
* DGNN gets ``dgnn.tune.study.tune`` with the task's shipped search space and the same budget and
  trial seeds, its kept configs then trained with every seed (``train_seeds``); plus the default
  portfolio, untuned;
* classification also keeps the untuned example settings of GCN, SGC, SIGN and the MLP.

Test labels are read only by the final per-seed trainings (the searches get data without them).
Rows go to ``results/peers_tuned.jsonl`` (``peers_tuned_cluster.jsonl``) as each method finishes,
every trial to ``peers_tuned_trials.jsonl.gz``; a rerun skips finished (dataset, method) pairs, and
the markdown table is rebuilt after every dataset. The protocol in full: ``peers/search.py``.

    .venv/bin/python -m benchmarks.bench_peers                               # 14 datasets, 120 s each
    .venv/bin/python -m benchmarks.bench_peers --datasets cora --budget-seconds 10 --seeds 0-1
    .venv/bin/python -m benchmarks.bench_peers --task cluster                # cora, citeseer, pubmed
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from benchmarks import methods
from benchmarks.bench_tune import ORDER
from benchmarks.peers import dgnn_rows, report
from benchmarks.peers.classify import PEERS
from benchmarks.peers.cluster import CLUSTER_PEERS
from benchmarks.peers.data import PeerData
from benchmarks.peers.rows import EXAMPLES, Settings, example_row, machine, peer_row
from dgnn.data import load_graph
from dgnn.seeds import parse_seeds

RESULTS = Path(__file__).resolve().parent / "results"
CLUSTER_DATASETS = ["cora", "citeseer", "pubmed"]
METHODS = {"classify": ["dgnn-tuned", *PEERS, "dgnn-default", *EXAMPLES],
           "cluster": ["dgnn-tuned", *CLUSTER_PEERS, "dgnn-default"]}
LABELS = {"dgnn-tuned": "DGNN tuned", "dgnn-default": "DGNN default"} | {
    k: p.label for k, p in (PEERS | CLUSTER_PEERS).items()} | {k: v[0].upper() + " ex." for k, v in EXAMPLES.items()}


def paths(out_dir: Path, task: str) -> dict[str, Path]:
    stem = "peers_tuned" if task == "classify" else "peers_tuned_cluster"
    # Every trial of every search, gzipped: several MB of JSON lines a dataset, a tenth of that packed.
    return {"rows": out_dir / f"{stem}.jsonl", "trials": out_dir / f"{stem}_trials.jsonl.gz", "md": out_dir / f"{stem}.md"}


def _append(path: Path, rows: list[dict]) -> None:
    """JSON lines added to ``path``; to a ``.gz`` file as one more gzip member (readers see one stream)."""
    with (gzip.open(path, "at") if path.suffix == ".gz" else path.open("a")) as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")


def _same(row: dict, s: Settings) -> bool:
    """A row measured under these settings: only those let a rerun skip the pair."""
    return all(row.get(k) == v for k, v in [("budget_seconds", s.budget_seconds), ("seeds", s.seeds),
                                            ("trial_seeds", s.trial_seeds), ("max_epochs", s.max_epochs),
                                            ("patience", s.patience)])


def measure(method: str, dataset: str, graph, data: PeerData, s: Settings) -> tuple[dict, list[dict]]:
    """One (dataset, method) row and its trials; every peer starts with empty caches."""
    if method == "dgnn-tuned":
        return dgnn_rows.tuned_row(dataset, s)
    if method == "dgnn-default":
        return dgnn_rows.default_row(dataset, s), []
    if method in EXAMPLES:
        return example_row(method, dataset, graph, s), []
    peers = PEERS if s.task == "classify" else CLUSTER_PEERS
    return peer_row(peers[method], dataset, data.fresh(), s)


def write_report(files: dict[str, Path], s: Settings, datasets: list[str]) -> None:
    """The table of every dataset measured so far (``datasets`` first), not only this run's."""
    rows = report.latest_rows(files["rows"])
    datasets = list(dict.fromkeys([*datasets, *(d for d, _ in rows)]))
    names = {m: LABELS[m] for m in METHODS[s.task]}
    intro = (f"`benchmarks/bench_peers.py --task {s.task}`: each method's search gets the same wall-clock "
             f"budget (the `budget s` column), on the same machine, split, features and trial seeds; the choice "
             f"is then trained with seeds {s.seeds[0]}-{s.seeds[-1]} (test figures: mean ± std over them). "
             "Rows and chosen hyper-parameters: the `.jsonl` beside this file; protocol: benchmarks/README.md.")
    if s.task == "classify":
        tuned = {m: LABELS[m] for m in PEERS}
        sections = [report.classify_table(rows, datasets, tuned, {m: LABELS[m] for m in EXAMPLES}),
                    ["Search seconds (trials by final state):", ""] + report.search_table(
                        rows, datasets, {m: names[m] for m in ["dgnn-tuned", *PEERS]})]
    else:
        sections = [report.cluster_table(rows, datasets, names)]
    report.write(files["md"], f"Tuned peers, {s.task}", intro, sections)


def run(task: str = "classify", datasets: list[str] | None = None, method_names: list[str] | None = None,
        budget_seconds: float = 120.0, seeds: list[int] | None = None, trial_seeds: list[int] = (0,),
        out_dir: Path = RESULTS, max_epochs: int = 500, patience: int = 50, log=print) -> list[dict]:
    """The benchmark; returns the rows of ``datasets`` x ``method_names`` now in the results."""
    datasets = datasets or (ORDER if task == "classify" else CLUSTER_DATASETS)
    method_names = method_names or METHODS[task]
    unknown = set(method_names) - set(METHODS[task])
    if unknown:
        raise ValueError(f"unknown {task} method(s) {sorted(unknown)}: use {METHODS[task]}")
    s = Settings(task, budget_seconds, list(seeds or (range(10) if task == "classify" else range(5))),
                 list(trial_seeds), max_epochs, patience)
    torch.set_num_threads(1)
    for noise in ("Sparse CSR tensor support is in beta", "Sparse invariant checks are implicitly disabled"):
        warnings.filterwarnings("ignore", message=noise)
    methods.warm_up()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = paths(out_dir, task)
    for dataset in datasets:
        done = {k for k, r in report.latest_rows(files["rows"]).items() if "error" not in r and _same(r, s)}
        graph = load_graph(dataset)
        data = PeerData.from_graph(graph)
        for method in method_names:
            if (dataset, method) in done:
                continue
            start = time.monotonic()
            row, trials = measure(method, dataset, graph, data, s)
            _append(files["trials"], [{"dataset": dataset, "method": method} | t for t in trials])
            _append(files["rows"], [row | machine()])
            log(f"{dataset} {method}: {time.monotonic() - start:.0f}s")
        write_report(files, s, datasets)
    rows = report.latest_rows(files["rows"])
    return [rows[d, m] for d in datasets for m in method_names if (d, m) in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["classify", "cluster"], default="classify")
    p.add_argument("--datasets", help="comma-separated (default: the 14 cheapest first; cluster: cora,citeseer,pubmed)")
    p.add_argument("--methods", help=f"comma-separated subset of {METHODS['classify']} (classify) "
                   f"or {METHODS['cluster']} (cluster)")
    p.add_argument("--budget-seconds", type=float, default=120.0, help="each method's whole search, per dataset")
    p.add_argument("--seeds", help="final training seeds (default 0-9; cluster 0-4)")
    p.add_argument("--trial-seeds", default="0", help="seeds each trial averages its criterion over")
    p.add_argument("--max-epochs", type=int, default=500)
    p.add_argument("--patience", type=int, default=50, help="epochs without a better validation accuracy")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    split = (lambda text: text.split(",") if text else None)
    run(args.task, split(args.datasets), split(args.methods), args.budget_seconds,
        parse_seeds(args.seeds) if args.seeds else None, parse_seeds(args.trial_seeds), args.out_dir,
        args.max_epochs, args.patience, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(paths(args.out_dir, args.task)["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
