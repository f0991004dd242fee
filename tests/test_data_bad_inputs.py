"""Every bad-input case: a clear one-line message, a non-zero exit, and data/ left exactly as it was."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest

from dgnn.data import DataError
from dgnn.data.build import build_graph
from cli.main import main


def _snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} | {
            str(p.relative_to(folder)): "dir" for p in folder.rglob("*") if p.is_dir()}


@pytest.fixture
def good_import(cora_user_files, tmp_data_dir, tmp_path):
    """Copies of the Cora user files, already imported once as 'papers' (the earlier good version)."""
    files = {k: shutil.copy(cora_user_files[k], tmp_path / f"{k}.csv") for k in ("edges", "nodes")}
    assert main(["import", "papers", "--edges", str(files["edges"]), "--nodes", str(files["nodes"])]) == 0
    return files


def _fails(argv, capsys, data_dir, *expected):
    """Run the CLI; assert exit 2 (bad input), a one-line message with every expected part, data/
    unchanged."""
    before = _snapshot(data_dir)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in expected:
        assert part in err, f"{part!r} not in {err}"
    assert _snapshot(data_dir) == before
    return err


def _import(files):
    return ["import", "papers", "--edges", str(files["edges"]), "--nodes", str(files["nodes"])]


def _edit(path, column, rows, value):
    """Set ``column`` to ``value`` (text) in the given data rows (a list or a boolean Series rule)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[rows(df) if callable(rows) else rows, column] = value
    df.to_csv(path, index=False)


def test_empty_file(good_import, capsys, tmp_data_dir):
    good_import["edges"].write_bytes(b"")
    _fails(_import(good_import), capsys, tmp_data_dir, "edges.csv", "empty")


def test_header_only_file(good_import, capsys, tmp_data_dir):
    good_import["edges"].write_text("src,dst\n")
    _fails(_import(good_import), capsys, tmp_data_dir, "edges.csv", "the table has no rows")


def test_missing_column(good_import, capsys, tmp_data_dir):
    edges = pd.read_csv(good_import["edges"])
    edges.drop(columns="dst").to_csv(good_import["edges"], index=False)
    _fails(_import(good_import), capsys, tmp_data_dir, "edges.csv", "missing column 'dst'")


def test_wrong_dtype(good_import, capsys, tmp_data_dir):
    _edit(good_import["nodes"], "f5", [3, 8], "abc")
    _fails(_import(good_import), capsys, tmp_data_dir,
           "nodes.csv", "column 'f5'", "cannot convert to dtype('float64')", "2 failing rows",
           "3 ('abc'), 8 ('abc')")


def test_negative_or_out_of_range_ids_in_user_edges(good_import, capsys, tmp_data_dir):
    _edit(good_import["edges"], "src", [0], "-1")
    _edit(good_import["edges"], "dst", [5], "2708")
    _fails(_import(good_import), capsys, tmp_data_dir,
           "edges.csv", "column 'src' is not a node_id of the nodes file: 1 failing row, first rows 0 ('-1')",
           "column 'dst'", "5 ('2708')")


def test_negative_or_out_of_range_ids_in_edge_index(cora_user_files):
    graph = cora_user_files["graph"]
    edges = graph.edge_index.numpy().copy()
    edges[0, 7], edges[1, 9], edges[1, 11] = -3, graph.num_nodes, graph.num_nodes + 5
    with pytest.raises(DataError) as err:
        build_graph("cora", graph.x.numpy(), edges, graph.y.numpy(), "ind.cora.graph")
    msg = str(err.value)
    assert "ind.cora.graph edges: column 'src' must be >= 0: 1 failing row, first rows 7 (-3)" in msg
    assert f"column 'dst' must be < {graph.num_nodes} (the node count): 2 failing rows" in msg


def test_edges_to_unknown_nodes(good_import, capsys, tmp_data_dir):
    _edit(good_import["edges"], "dst", lambda df: df.index % 1000 == 1, "nobody")
    _fails(_import(good_import), capsys, tmp_data_dir,
           "edges.csv", "column 'dst' is not a node_id of the nodes file",
           "first rows 1 ('nobody'), 1001 ('nobody')")


def test_duplicate_node_ids(good_import, cora_user_files, capsys, tmp_data_dir):
    _edit(good_import["nodes"], "node_id", [10], cora_user_files["ids"][4])
    _fails(_import(good_import), capsys, tmp_data_dir,
           "nodes.csv", "column 'node_id' must be unique (repeated values): 2 failing rows", "4 (", "10 (")


@pytest.mark.parametrize("bad, problem", [
    ("nan", "must not be empty or NaN"),
    ("inf", "must be finite (no NaN or inf)"),
    ("-inf", "must be finite"),
])
def test_nonfinite_features(good_import, capsys, tmp_data_dir, bad, problem):
    _edit(good_import["nodes"], "f0", [42], bad)
    _fails(_import(good_import), capsys, tmp_data_dir,
           "nodes.csv", f"column 'f0' {problem}", "1 failing row, first rows 42")


def test_nonfinite_features_in_a_catalogue_matrix(cora_user_files):
    graph = cora_user_files["graph"]
    x = graph.x.numpy().copy()
    x[[4, 9], 0], x[9, 3] = np.nan, np.inf
    expected = (r"ind.cora.\* features: column 'nonfinite' row has NaN or inf feature values: "
                r"2 failing rows, first rows 4 \(1\), 9 \(2\)")
    with pytest.raises(DataError, match=expected):
        build_graph("cora", x, graph.edge_index.numpy(), graph.y.numpy(), "ind.cora.*")


def test_labels_out_of_range(good_import, capsys, tmp_data_dir):
    _edit(good_import["nodes"], "label", [2], "-2")
    _edit(good_import["nodes"], "label", [3], "1.5")
    _fails(_import(good_import), capsys, tmp_data_dir, "nodes.csv", "column 'label'",
           "must be >= 0: 1 failing row, first rows 2 (-2.0)", "must be a whole number")


def test_labels_out_of_range_of_classes(cora_user_files):
    graph = cora_user_files["graph"]
    y = graph.y.numpy().copy()
    y[[5, 6]] = 7
    expected = r"column 'label' must be < 7 \(classes\): 2 failing rows, first rows 5 \(7\)"
    with pytest.raises(DataError, match=expected):
        build_graph("cora", graph.x.numpy(), graph.edge_index.numpy(), y, "ind.cora.*", num_classes=7,
                    masks=np.stack([graph.train_mask, graph.val_mask, graph.test_mask]))


def test_overlapping_splits(cora_user_files):
    graph = cora_user_files["graph"]
    masks = np.stack([graph.train_mask, graph.val_mask, graph.test_mask])
    masks[2, :3] = True  # train nodes 0..2 also in test
    expected = r"ind.cora.\* split: node is in more than one split: 3 failing rows, first rows 0, 1, 2"
    with pytest.raises(DataError, match=expected):
        build_graph("cora", graph.x.numpy(), graph.edge_index.numpy(), graph.y.numpy(), "ind.cora.*",
                    masks=masks)


def test_split_with_no_labelled_nodes(good_import, capsys, tmp_data_dir):
    _edit(good_import["nodes"], "label", lambda df: df["split"] == "val", "")
    _fails(_import(good_import), capsys, tmp_data_dir,
           "nodes.csv split", "the val split has no labelled nodes",
           "node is in a split but has no label: 500 failing rows")


def test_truncated_csv(good_import, capsys, tmp_data_dir):
    data = good_import["edges"].read_bytes()
    good_import["edges"].write_bytes(data[: len(data) // 2].rsplit(b",", 1)[0] + b",")
    _fails(_import(good_import), capsys, tmp_data_dir, "edges.csv", "column 'dst'", "1 failing row")


def test_truncated_parquet(good_import, capsys, tmp_data_dir):
    parquet = good_import["nodes"].with_suffix(".parquet")
    pd.read_csv(good_import["nodes"]).to_parquet(parquet)
    parquet.write_bytes(parquet.read_bytes()[:-100])
    argv = ["import", "papers", "--edges", str(good_import["edges"]), "--nodes", str(parquet)]
    _fails(argv, capsys, tmp_data_dir, "nodes.parquet", "truncated or corrupt")


@pytest.fixture
def cora_ml_mirror(shared_datasets, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "graphgallery").mkdir(parents=True)
    shutil.copy(shared_datasets / "graphgallery" / "cora_ml.npz", mirror / "graphgallery")
    return mirror


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_checksum_mismatch_keeps_the_good_version(cora_ml_mirror, capsys, tmp_data_dir, damage):
    argv = ["fetch", "cora-ml", "--mirror", str(cora_ml_mirror)]
    assert main(argv) == 0
    npz = cora_ml_mirror / "graphgallery" / "cora_ml.npz"
    data = bytearray(npz.read_bytes())
    if damage == "truncate":
        del data[len(data) // 2:]
    else:
        data[1000] ^= 0xFF
    npz.write_bytes(bytes(data))
    _fails(argv, capsys, tmp_data_dir, "checksum mismatch for cora-ml", "cora_ml.npz",
           "expected 590d93689ec70aa0da17b3f1c6915dfd3c1b6306ad4f3286a2075599f7a85630", "nothing was parsed")


def test_corrupt_planetoid_file_is_never_unpickled(
    shared_datasets, tmp_path, capsys, tmp_data_dir, monkeypatch
):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_datasets / "planetoid" / "Cora", mirror / "planetoid" / "Cora")
    malicious = b"cos\nsystem\n(S'echo pwned'\ntR."  # would run a shell command if unpickled
    (mirror / "planetoid" / "Cora" / "raw" / "ind.cora.graph").write_bytes(malicious)
    monkeypatch.setattr("pickle.load", lambda *a, **k: pytest.fail("unverified file unpickled"))
    _fails(["fetch", "cora", "--mirror", str(mirror)], capsys, tmp_data_dir,
           "checksum mismatch for cora", "ind.cora.graph")


def test_missing_mirror_file(tmp_path, capsys, tmp_data_dir):
    _fails(["fetch", "acm", "--mirror", str(tmp_path)], capsys, tmp_data_dir,
           "graphgallery/acm.npz not found", "layout of shared/datasets")
