"""Ablation of the accuracy levers: each shipped config that turns levers on, trained as shipped and
again with each of its levers off (one at a time, and all at once), seeds 0-9, on its dataset's
split (clustering configs seeds 0-4). Every row is the same config but for the lever named, so the
difference is the lever's.

Test accuracy is reported, never used to choose anything (the shipped configs were chosen on
validation: ``configs/README.md``). One process, one torch thread, one run after another.
Results: ``results/levers.json`` (rows appended as they finish; a rerun skips finished rows),
table in REPORT.md.

    .venv/bin/python -m benchmarks.bench_levers                      # every shipped config with levers
    .venv/bin/python -m benchmarks.bench_levers --configs configs/cora-classify.yaml --seeds 0-2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from dgnn.config import CONFIG_DIR, RunConfig, TrainConfig, load_config
from dgnn.seeds import parse_seeds, train_seeds

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "levers.json"
SECTIONS = ("consistency", "label_input", "self_training", "correct_smooth", "cluster_refine")


def shipped_with_levers() -> list[Path]:
    """The shipped run configs (not portfolios) that turn at least one lever on."""
    out = []
    for path in sorted(CONFIG_DIR.glob("*-c*.yaml")):  # -classify and -cluster
        config = load_config(path)
        if isinstance(config, RunConfig) and config.train.levers():
            out.append(path)
    return out


def ablations(train: TrainConfig) -> dict[str, TrainConfig]:
    """The config as shipped, each lever section off on its own, and every one off together."""
    on = [name for name in SECTIONS if getattr(train, name) is not None]
    variants = {"as shipped": train}
    for name in on:
        variants[f"without {name}"] = train.model_copy(update={name: None})
    if len(on) > 1:
        variants["without any lever"] = train.model_copy(update=dict.fromkeys(on))
    return variants


def _finished() -> list[dict]:
    return json.loads(RESULT.read_text())["rows"] if RESULT.exists() else []


def _save(rows: list[dict]) -> None:
    RESULT.write_text(json.dumps({"updated": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", type=Path, help="run configs (default: the shipped ones with levers)")
    parser.add_argument("--seeds", help="default: 0-9 to classify, 0-4 to cluster")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "dgnn-bench-data")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = _finished()
    done = {(r["config"], r["variant"], tuple(r["seeds"])) for r in rows}
    for path in args.configs or shipped_with_levers():
        config = load_config(path)
        seeds = parse_seeds(args.seeds or ("0-9" if config.train.task == "classify" else "0-4"))
        shown = os.path.relpath(path.resolve(), HERE.parent)
        for variant, train in ablations(config.train).items():
            if (shown, variant, tuple(seeds)) in done:
                continue
            load = os.getloadavg()[0]
            summary = train_seeds(config.dataset, train, seeds, device="cpu", data_dir=args.data_dir,
                                  split_seed=config.split_seed, verbose=False, threads=1)
            rows.append({"config": shown, "dataset": config.dataset, "variant": variant, "seeds": seeds,
                         "architecture": train.describe(), "levers": train.levers(), "load_avg_before": load,
                         **{k: summary[k] for k in summary if k.endswith(("_mean", "_std"))},
                         "per_seed": [{k: v for k, v in r.items() if isinstance(v, (int, float))}
                                      for r in summary["per_seed"]]})
            _save(rows)
            shown_metrics = {k[:-5]: round(v, 4) for k, v in summary.items() if k.endswith("_mean") and v is not None}
            print(f"{shown} {variant}: {shown_metrics}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
