"""Import a user's graph (edges + nodes, CSV or Parquet) and map predictions back to their ids.

Edges: ``src``, ``dst`` (node ids), optional ``weight``. Nodes: ``node_id`` (any ids, compared as
text), feature columns (every other column), optional ``label`` (whole number >= 0, or class names
as text, numbered in sorted order and kept as ``class_names``; empty = unlabelled) and ``split``
(train / val / test, empty = none; without the column the seeded stratified split is used). Node i
of the stored graph is row i of the nodes file.

A DVC workspace keeps a copy of the two files in ``imports/<name>/`` (:func:`source_files`), from
which ``dgnn fetch <name>`` (the DVC stage ``fetch@<name>``) imports again.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dgnn.data.build import build_graph
from dgnn.data.errors import DataError
from dgnn.data.graph import Graph
from dgnn.data.layout import FetchResult, dataset_dir, store_graph
from dgnn.data.schemas import FIRST_ROWS, SPLITS, problems, raise_problems, user_edges_schema, user_nodes_schema
from dgnn.data.stage_folders import file_sha256
from dgnn.machine import available_memory

_ID_COLUMNS = {"node_id": "string", "src": "string", "dst": "string"}
_RESERVED = ("node_id", "label", "split")
_SUFFIXES = (".csv", ".parquet", ".pq")
FIX = "Fix the files and run `dgnn import` again; nothing was written to data/."
HINT = f"Rows count from 0 after the header. {FIX}"


def _read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (id columns as text) or Parquet file; unreadable files raise :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (it needs a header row and data rows). {HINT}")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    if suffix == ".csv":
        _check_csv(path)
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=_ID_COLUMNS)
        return pd.read_parquet(path)
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read {path}: the file is truncated or corrupt ({err}). {HINT}") from err


# Reading a CSV of numbers takes up to about this many times its size in memory (parsed values
# as float64, the validated copy, the float32 matrix); a header row is never longer than this.
CSV_MEMORY_FACTOR = 8
HEADER_MAX = 1 << 24


def _check_csv(path: Path) -> None:
    """Refuse, before reading, a CSV whose reading would not fit in memory or that is not text: no
    line break in its first :data:`HEADER_MAX` bytes, NUL bytes or holes (a sparse file's holes
    read as NUL bytes: pandas took 15 GB for a 2 GB one)."""

    size, available = path.stat().st_size, available_memory()
    if size * CSV_MEMORY_FACTOR > available:
        raise DataError(f"{path}: {size / 1e9:.1f} GB; reading it takes about {size * CSV_MEMORY_FACTOR / 1e9:.0f} GB "
                        f"of memory, {available / 1e9:.1f} GB are available: split the graph, or import it on a "
                        "machine with more memory")
    with open(path, "rb") as f:
        head = f.read(HEADER_MAX)
        hole = os.lseek(f.fileno(), 0, os.SEEK_HOLE)
    if b"\n" not in head and size > len(head):
        raise DataError(f"{path}: no line break in its first {HEADER_MAX >> 20} MB: not a CSV table (its first row "
                        f"names the columns). {FIX}")
    if b"\0" in head or hole < size:
        raise DataError(f"{path}: holds NUL bytes (a binary or sparse file), not CSV text. {FIX}")


def _labels(nodes: pd.DataFrame, source: str) -> tuple[pd.Series, list[str] | None]:
    """(label column, class names): text labels become their index among the sorted names. A
    column of class numbers with some text in it (a typo, not a class of its own) raises
    :class:`DataError` naming those rows."""
    if "label" not in nodes:
        return pd.Series(np.nan, index=nodes.index), None
    labels = nodes["label"]
    if pd.api.types.is_numeric_dtype(labels):
        return labels, None
    text = labels.astype("string")
    given = text.dropna()  # an empty label is unlabelled, neither a number nor a name
    number = given.str.fullmatch(r"\s*[+-]?\d+(\.0*)?\s*").astype(bool)
    if number.any() and not number.all():
        named = given[~number]
        first = ", ".join(f"{i} ({v!r})" for i, v in named.iloc[:FIRST_ROWS].items())
        raise DataError(f"{source}: column 'label' mixes class numbers and names: {len(named)} row(s) hold text, "
                        f"first rows {first}; write every label as a number, or every label as a name. {HINT}")
    names = sorted(text.dropna().unique())
    return text.map({n: i for i, n in enumerate(names)}).astype("Float64"), names


def _unlike_numbers(nodes: pd.DataFrame, features: list[str]) -> list[str]:
    """The feature columns not read as finite numbers: the ones the schema checks one by one."""
    dtypes = nodes.dtypes
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(dtypes[c])]
    finite = np.isfinite(nodes[numeric].to_numpy(np.float64, na_value=np.nan)).all(axis=0)
    checked_at_once = {c for c, ok in zip(numeric, finite) if ok}
    return [c for c in features if c not in checked_at_once]


def source_files(folder: Path) -> tuple[Path, Path]:
    """(edges, nodes) file of a folder holding one ``edges.<ext>`` and one ``nodes.<ext>``."""
    found = []
    for stem in ("edges", "nodes"):
        files = sorted(p for p in Path(folder).glob(f"{stem}.*") if p.suffix.lower() in _SUFFIXES)
        if len(files) != 1:
            raise DataError(f"{folder}: expected one {stem} file ({stem}.csv or {stem}.parquet), found "
                            f"{[p.name for p in files]}; run `dgnn import` again")
        found.append(files[0])
    return found[0], found[1]


def read_user_graph(name: str, edges_path, nodes_path) -> Graph:
    """Validate both files (every problem reported at once) and build the graph, ids remapped to
    0..n-1 (the original ids in ``node_ids``); nothing is written."""
    dataset_dir(name)
    edges_path, nodes_path = Path(edges_path), Path(nodes_path)
    nodes, edges = _read_table(nodes_path), _read_table(edges_path)
    labels, class_names = _labels(nodes, nodes_path.name)
    nodes = nodes.assign(label=labels) if "label" in nodes else nodes
    features = [str(c) for c in nodes.columns if c not in _RESERVED]
    node_keys = nodes["node_id"] if "node_id" in nodes else pd.Series([])
    node_keys = node_keys.astype("string")  # ids are compared as text
    keyed = edges.assign(**{c: edges[c].astype("string") for c in ("src", "dst") if c in edges})
    nodes, node_problems = problems(nodes, user_nodes_schema(features, _unlike_numbers(nodes, features)),
                                    nodes_path.name)
    keyed, edge_problems = problems(keyed, user_edges_schema(pd.Index(node_keys)), edges_path.name)
    raise_problems(node_problems + edge_problems, HINT)

    index = pd.Index(node_keys)
    edge_index = np.stack([index.get_indexer(keyed["src"]), index.get_indexer(keyed["dst"])])
    labels = nodes["label"] if "label" in nodes else labels
    masks = None
    if "split" in nodes:
        masks = np.stack([(nodes["split"] == s).fillna(False).to_numpy(bool) for s in SPLITS])
    ids = nodes["node_id"].to_numpy()
    return build_graph(
        name,
        nodes[features].to_numpy(np.float32, copy=True),  # a view of a validated frame is read-only
        edge_index,
        labels.fillna(-1).to_numpy(np.int64),
        source=nodes_path.name,
        masks=masks,
        split_kind="user split column",
        weight=keyed["weight"].to_numpy(np.float32) if "weight" in keyed else None,
        node_ids=ids.astype(str) if ids.dtype == object else ids,
        meta={
            "imported_from": {
                "edges": {"file": edges_path.name, "sha256": file_sha256(edges_path)},
                "nodes": {"file": nodes_path.name, "sha256": file_sha256(nodes_path)},
            },
            "feature_columns": features,
            **({"class_names": class_names} if class_names else {}),
        },
        hint=HINT,
    )


def import_graph(name: str, edges_path, nodes_path, data_dir=None) -> FetchResult:
    """:func:`read_user_graph`, then store it: afterwards ``name`` works wherever a catalogue name does.

    The original ids are kept in ``node_ids.npy`` (see :func:`predictions_to_ids`).
    """
    return store_graph(read_user_graph(name, edges_path, nodes_path), data_dir)


def predictions_to_ids(graph: Graph, predictions) -> pd.DataFrame:
    """Table (node_id, prediction): one row per node in the user's ids.

    ``predictions`` is a class per node [n] or scores [n, C] (arg-max taken); graphs without
    stored ids use 0..n-1.
    """
    if torch.is_tensor(predictions):
        predictions = predictions.detach().cpu().numpy()
    pred = np.asarray(predictions)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.shape != (graph.num_nodes,):
        raise ValueError(f"expected {graph.num_nodes} predictions, got shape {pred.shape}")
    ids = graph.node_ids if graph.node_ids is not None else np.arange(graph.num_nodes)
    return pd.DataFrame({"node_id": ids, "prediction": pred})
