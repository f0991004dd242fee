"""What ``benchmarks.run_all`` measures, in order: the datasets, the methods, the DGNN config of
each row and the seeds; the report reads it to say which rows a partial run still lacks."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import REPO, Spec

HERE = Path(__file__).resolve().parent
CSBM_CONFIG = HERE / "configs" / "csbm-dgnn.yaml"
CONFIGS = REPO / "configs"

REAL = ["cora", "citeseer", "pubmed", "amazon-computers", "coauthor-cs"]
SCALING = ["synthetic-csbm-10k", "synthetic-csbm-100k", "synthetic-csbm-1m"]
PEERS = ["dgnn", "gcn", "sgc", "sign"]
GCN_EPOCHS = 200


def dgnn_config(dataset: str) -> Path:
    """The dataset's own DGNN config (every real dataset has one; the generic default is not used)."""
    return CONFIGS / f"{dataset}-classify.yaml"


def paper_config(dataset: str) -> Path:
    return CONFIGS / f"paper-{dataset}-classify.yaml"


def train_config(path: str | Path):
    """The ``train:`` section of a DGNN run config."""
    from dgnn.config import load_config

    return load_config(path).train


def config_origin(config: str | Path, dataset: str) -> str:
    """Where a DGNN config's settings come from, named from its file."""
    name = Path(config).name
    if name.startswith("paper-"):
        return "authors' settings, not tuned"
    if name == f"{dataset}-classify.yaml":
        return f"tuned on {dataset} validation"
    return "set by hand, not tuned"


def plan(quick: bool) -> list[Spec]:
    """What to run, in order: real datasets (acceptance), the authors' settings, the CSBM series."""
    specs: list[Spec] = []
    if quick:
        real, scaling = ["cora"], ["synthetic-csbm-2k", "synthetic-csbm-5k"]
        seeds = {"dgnn": [0], "gcn": [0], "sgc": [0, 1], "sign": [0, 1]}
        gcn_epochs, big_budget = 50, 60.0
    else:
        real, scaling = REAL, SCALING
        seeds = {"dgnn": [0, 1, 2, 3, 4], "gcn": [0, 1, 2], "sgc": [0, 1, 2, 3, 4], "sign": [0, 1, 2, 3, 4]}
        gcn_epochs, big_budget = GCN_EPOCHS, 360.0

    def peer_specs(dataset: str) -> list[Spec]:
        config = dgnn_config(dataset)
        feature_norm = train_config(config).feature_norm if config.exists() else "row"
        out = []
        for method in PEERS:
            s = seeds[method]
            if method == "gcn" and dataset == "coauthor-cs":
                s = [0]  # ~9 min a seed on one loaded core: one seed only (stated in the report)
            out.append(Spec(method, dataset, s, config=str(config) if method == "dgnn" else None,
                            feature_norm=feature_norm, epochs=gcn_epochs if method == "gcn" else None,
                            timeout_s=3600))
        return out

    def scaling_specs(dataset: str) -> list[Spec]:
        large = dataset.endswith("1m")
        return [Spec(method, dataset, [0] if large or method == "gcn" else [0, 1],
                     config=str(CSBM_CONFIG) if method == "dgnn" else None, feature_norm="none",
                     epochs=gcn_epochs if method == "gcn" else None,
                     budget_s=big_budget if method != "dgnn" else None,
                     timeout_s=(big_budget + 600) if method != "dgnn" else 1800, mem_limit_gb=14.0, group="scaling")
                for method in (PEERS if not quick else ["dgnn", "gcn", "sgc"])]

    # Order: the core-speed datasets, the authors' settings, the scaling series, then the two larger
    # real datasets (GCN on Coauthor CS is the longest run), so a cut-short run has the core first.
    for dataset in real[:3]:
        specs += peer_specs(dataset)
    for dataset in real[:3]:
        specs.append(Spec("dgnn-paper", dataset, seeds["dgnn"][:3], config=str(paper_config(dataset)),
                          group="core", timeout_s=900))
    for dataset in scaling:
        specs += scaling_specs(dataset)
    for dataset in real[3:]:
        specs += peer_specs(dataset)
    return specs
