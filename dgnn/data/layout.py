"""Where a dataset lives under ``data/``, what a stored graph reports (:class:`FetchResult`) and
which command rewrites a damaged folder."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from dgnn.data.errors import DataError
from dgnn.data.graph import Graph, save_graph
from dgnn.data.stage_folders import atomic_folder, damaged_files, is_intact, read_meta

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A name becomes part of longer file names (temporary folders, run folders, ``imports/<name>.dvc``,
# ``configs/<name>-<task>.yaml``), each at most 255 bytes on common file systems.
NAME_MAX = 100


def data_root(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``$DGNN_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get("DGNN_DATA_DIR") or "data")


def dataset_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """``<data>/<name>``; refuses names that are not a plain folder name of at most :data:`NAME_MAX`
    characters."""
    if len(name) > NAME_MAX:
        raise DataError(f"invalid dataset name {name[:20]!r}... ({len(name)} characters): use at most {NAME_MAX}")
    if not _SAFE_NAME.fullmatch(name):
        raise DataError(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-' "
            "(not starting with '.' or '-')"
        )
    return data_root(data_dir) / name


def graph_dir(name: str, data_dir: str | Path | None = None) -> Path:
    return dataset_dir(name, data_dir) / "graph"


def import_source_dir(name: str) -> Path:
    """``imports/<name>``, relative to the working directory like ``./data`` (the project root for
    DVC stages): where a DVC workspace keeps its copy of an imported graph's files."""
    dataset_dir(name)
    return Path("imports") / name


def rebuild_command(folder: Path) -> str:
    """The ``dgnn`` command that rewrites a stored folder of ``<data>/<name>/``."""
    folder = Path(folder)
    name, meta = folder.parent.name, read_meta(folder)
    if folder.name == "adj":
        command = f"dgnn normalise {name}"
    elif folder.name == "propagated":
        norm = meta.get("feature_norm", "none")
        command = f"dgnn propagate {name} --orders {' '.join(map(str, meta['orders']))}"
        command += f" --feature-norm {norm}" if norm != "none" else ""
    elif folder.name.startswith("split-seed"):
        command = f"dgnn fetch {name} --split-seed {meta['split']['seed']}"
    elif "imported_from" in meta and not import_source_dir(name).is_dir():  # else fetch imports the copy
        files = meta["imported_from"]
        command = f"dgnn import {name} --edges {files['edges']['file']} --nodes {files['nodes']['file']}"
    else:
        command = f"dgnn fetch {name}"
    root = folder.parent.parent
    return command if root.resolve() == data_root().resolve() else f"{command} --data-dir {root}"


def damage_error(folder: Path, files: list[str]) -> DataError:
    """The error for a folder whose ``files`` differ from its ``meta.json``: which, and the fix."""
    return DataError(
        f"{folder} changed after it was written ({', '.join(files)} differ(s) from the SHA-256s in its "
        f"meta.json): rebuild it with `{rebuild_command(folder)}`"
    )


def require_intact(folder: Path) -> Path:
    """``folder`` if its files are the ones its ``meta.json`` records (checked by
    :func:`dgnn.data.stage_folders.is_intact`), else :func:`damage_error`."""
    if not is_intact(folder):
        raise damage_error(folder, damaged_files(folder))
    return folder


@dataclass
class FetchResult:
    """What a fetch or import stored: counts (undirected edges, no self-loops), path and hash."""

    name: str
    path: str
    content_hash: str
    nodes: int
    edges: int
    features: int
    classes: int
    split: dict
    edge_policy: dict

    @classmethod
    def from_folder(cls, folder: Path) -> FetchResult:
        meta = read_meta(folder)
        keys = ("name", "content_hash", "nodes", "edges", "features", "classes", "split", "edge_policy")
        return cls(path=str(Path(folder).resolve()), **{k: meta[k] for k in keys})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def store_graph(graph: Graph, data_dir: str | Path | None = None) -> FetchResult:
    """Write ``graph`` to ``<data>/<name>/graph/`` atomically (an earlier version survives any error)."""
    folder = graph_dir(graph.name, data_dir)
    with atomic_folder(folder) as tmp:
        save_graph(graph, tmp)
    return FetchResult.from_folder(folder)
