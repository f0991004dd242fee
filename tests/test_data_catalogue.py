"""Catalogue datasets fetched from the real mirror: counts equal shared/datasets/README.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from dgnn.data import DATASETS, DataError, fetch, load_graph
from dgnn.data.catalogue import CATALOGUE


def _first_int(cell: str) -> int:
    return int(re.match(r"[\d,]+", cell.strip())[0].replace(",", ""))


@pytest.fixture(scope="module")
def readme_counts(shared_datasets) -> dict[str, dict]:
    """Counts per catalogue name, parsed from the summary table of the mirror's README."""
    counts = {}
    for line in (shared_datasets / "README.md").read_text().splitlines():
        cells = line.split("|")[1:-1]
        if len(cells) < 7 or "`" not in cells[2]:
            continue
        path = cells[2].split("`")[1]
        names = [n for n, s in CATALOGUE.items() if next(iter(s.files)).startswith(path)]
        if names:
            nodes, edges, features, classes = (_first_int(c) for c in cells[3:7])
            counts[names[0]] = {"nodes": nodes, "edges": edges, "features": features, "classes": classes}
    return counts


def test_readme_lists_every_catalogue_dataset(readme_counts):
    assert sorted(readme_counts) == sorted(DATASETS)


@pytest.mark.parametrize("name", DATASETS)
def test_fetch_counts_equal_readme(name, shared_datasets, tmp_data_dir, readme_counts):
    result = fetch(name, data_dir=tmp_data_dir, mirror=shared_datasets)
    got = {k: getattr(result, k) for k in ("nodes", "edges", "features", "classes")}
    assert got == readme_counts[name]
    assert result.path == str((tmp_data_dir / name / "graph").resolve())
    assert len(result.content_hash) == 64


def test_fetch_is_byte_deterministic(shared_datasets, tmp_path):
    first = fetch("citeseer", data_dir=tmp_path / "a", mirror=shared_datasets)
    second = fetch("citeseer", data_dir=tmp_path / "b", mirror=shared_datasets)
    assert first.content_hash == second.content_hash
    meta = [(tmp_path / d / "citeseer" / "graph" / "meta.json").read_bytes() for d in "ab"]
    assert meta[0] == meta[1]


def test_split_seeds_are_stored_apart(shared_datasets, tmp_data_dir):
    g0 = load_graph("cora-ml", mirror=shared_datasets)
    g1 = load_graph("cora-ml", mirror=shared_datasets, split_seed=1)
    assert g0.meta["split"]["seed"] == 0 and g1.meta["split"]["seed"] == 1
    assert (tmp_data_dir / "cora-ml" / "split-seed1" / "train_mask.npy").exists()
    assert not (g0.train_mask == g1.train_mask).all()
    for g in (g0, g1):
        per_class = [int(g.train_mask[g.y == c].sum()) for c in range(g.num_classes)]
        assert per_class == [20] * g.num_classes
        assert int(g.val_mask.sum()) == 30 * g.num_classes
        assert not (g.train_mask & g.val_mask).any() and not (g.val_mask & g.test_mask).any()
    assert load_graph("cora-ml", split_seed=1).train_mask.equal(g1.train_mask)


def test_planetoid_split_is_fixed(shared_datasets, tmp_data_dir):
    g = load_graph("cora", mirror=shared_datasets, split_seed=5)
    assert g.meta["split"] == {"kind": "planetoid public split"}
    assert (int(g.train_mask.sum()), int(g.val_mask.sum()), int(g.test_mask.sum())) == (140, 500, 1000)


def test_unknown_name_is_a_data_error(tmp_data_dir):
    with pytest.raises(DataError, match="unknown dataset 'corra'.*dgnn import"):
        fetch("corra")
    assert list(tmp_data_dir.iterdir()) == []


def test_cli_module_prints_json(shared_datasets, tmp_data_dir):
    cmd = [sys.executable, "-m", "cli.main", "fetch", "acm", "--json",
           "--mirror", str(shared_datasets), "--data-dir", str(tmp_data_dir)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert (out["nodes"], out["edges"], out["features"], out["classes"]) == (3025, 13128, 1870, 3)
    assert out["edge_policy"] == {"self_loops_dropped": 0, "duplicates_merged": 0}


def test_download_path_uses_canonical_urls(shared_datasets, tmp_data_dir, monkeypatch):
    """Without a mirror each file comes from its canonical URL (served here from the mirror)."""
    monkeypatch.delenv("DGNN_DATA_MIRROR", raising=False)
    monkeypatch.chdir(tmp_data_dir)  # no ../shared/datasets beside it: the default mirror is none
    raw = shared_datasets / "planetoid" / "Cora" / "raw"
    served = {f"{CATALOGUE['cora'].base_url}{p.name}": p for p in raw.iterdir()}
    requested = []

    def urlopen(url, timeout):
        requested.append(url)
        return open(served[url], "rb")

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    assert fetch("cora").nodes == 2708
    assert sorted(requested) == sorted(served)
    assert requested[0].startswith("https://github.com/kimiyoung/planetoid/raw/master/data/ind.cora.")


def test_download_failure_is_a_data_error(tmp_data_dir, monkeypatch):
    monkeypatch.delenv("DGNN_DATA_MIRROR", raising=False)
    monkeypatch.chdir(tmp_data_dir)  # no ../shared/datasets beside it: the default mirror is none

    def offline(url, timeout):
        raise OSError("Network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    url = "https://github.com/EdisonLeeeee/GraphData/raw/master/datasets/acm.npz"
    expected = rf"cannot download {url} \(Network is unreachable\).*DGNN_DATA_MIRROR"
    with pytest.raises(DataError, match=expected):
        fetch("acm")
    assert list(tmp_data_dir.iterdir()) == []
