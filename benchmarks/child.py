"""One benchmark process: one method on one dataset, all its seeds, then exit.

Run by :mod:`benchmarks.harness`, never by hand (though it works)::

    python -m benchmarks.child --method gcn --dataset cora --seeds 0,1,2 --out R.jsonl --progress P.jsonl

Writes JSON lines to ``--out``: ``setup`` (load time, sizes, RSS after loading), one ``seed`` line
per finished seed, and ``done`` with the process's peak RSS (``ru_maxrss``). ``--progress`` gets a
line per epoch / module step, flushed, so a run stopped from outside still says how far it got.
``--prepare`` only fetches the dataset into the data folder (untimed, before any run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def _pin(threads: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    import torch

    torch.set_num_threads(threads)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", required=False)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seeds", default="0")
    p.add_argument("--config", help="DGNN run config (YAML)")
    p.add_argument("--feature-norm", default="row", choices=["row", "none"], help="peers only")
    p.add_argument("--epochs", type=int, help="peers: override the epoch count")
    p.add_argument("--budget", type=float, help="seconds per seed after which a peer stops early")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out")
    p.add_argument("--progress")
    p.add_argument("--prepare", action="store_true", help="only fetch the dataset")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.prepare:
        from dgnn.data import fetch

        result = fetch(args.dataset, data_dir=args.data_dir)
        print(json.dumps({"nodes": result.nodes, "edges": result.edges, "features": result.features,
                          "classes": result.classes}))
        return 0

    _pin(args.threads)
    from benchmarks import methods
    from dgnn.data import load_graph

    out = open(args.out, "a", buffering=1)
    progress_file = open(args.progress, "a", buffering=1) if args.progress else None

    def emit(kind: str, **fields) -> None:
        out.write(json.dumps({"kind": kind, **fields}) + "\n")

    methods.warm_up()
    start = time.perf_counter()
    graph = load_graph(args.dataset, data_dir=args.data_dir)
    emit("setup", load_seconds=time.perf_counter() - start, nodes=graph.num_nodes, edges=graph.num_edges,
         features=graph.num_features, classes=graph.num_classes, rss_after_load_mb=_rss_mb(),
         pid=os.getpid(), threads=args.threads)

    kwargs: dict = {"feature_norm": args.feature_norm, "budget_s": args.budget}
    if args.epochs:
        kwargs["epochs"] = args.epochs
    if args.method == "dgnn":
        from dgnn.config import load_config

        kwargs["config"] = load_config(args.config).train
    train = methods.METHODS[args.method]
    for seed in (int(s) for s in args.seeds.split(",")):
        def progress(info: dict, seed=seed) -> None:
            if progress_file:
                progress_file.write(json.dumps({"seed": seed, "rss_mb": round(_rss_mb(), 1), **info}) + "\n")

        result = train(graph, seed, progress=progress, **kwargs)
        emit("seed", **result.to_dict(), peak_rss_mb_so_far=_peak_rss_mb())
        if result.stopped_early:
            break
    emit("done", peak_rss_mb=_peak_rss_mb())
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
