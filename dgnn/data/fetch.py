"""Fetch a dataset by name (catalogue, synthetic or imported) into ``data/<name>/graph/``.

Raw catalogue files are read from the mirror (``mirror``, else :func:`default_mirror`) or downloaded,
checked against their pinned SHA-256, copied to a private temporary folder and parsed only from
there. ``graph/`` always holds split seed 0; another seed of a stratified split is stored in
``<name>/split-seed<k>/`` (the masks only), so seeds never collide.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch

from dgnn.data import synthetic
from dgnn.data.errors import DataError
from dgnn.data.graph import Graph, load_graph_folder
from dgnn.data.layout import (
    FetchResult,
    dataset_dir,
    graph_dir,
    import_source_dir,
    require_intact,
    store_graph,
)
from dgnn.data.npz import read_npz
from dgnn.data.planetoid import read_planetoid
from dgnn.data.catalogue import DATASETS, CATALOGUE, Source
from dgnn.data.splits import stratified_split
from dgnn.data.stage_folders import atomic_folder, is_current, is_intact, is_stored, read_meta, write_meta
from dgnn.data.user_import import read_user_graph, source_files
from dgnn.processes import owned_temp_dir

_MASKS = ("train_mask", "val_mask", "test_mask")


def _raw_bytes(source: Source, path: str, mirror: str | None) -> tuple[str, bytes]:
    """(where it came from, content) of one raw file, from the mirror or its canonical URL."""
    if mirror:
        origin = Path(mirror) / path
        if not origin.is_file():
            raise DataError(
                f"{origin} not found: the mirror must have the layout of shared/datasets "
                f"(set DGNN_DATA_MIRROR or --mirror to that folder)"
            )
        return str(origin), origin.read_bytes()
    url = source.url(path)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return url, response.read()
    except OSError as err:
        raise DataError(
            f"cannot download {url} ({err}); without internet set DGNN_DATA_MIRROR or --mirror "
            "to a copy of shared/datasets"
        ) from err


def _read_catalogued(source: Source, mirror: str | None) -> Graph:
    """Verify every raw file, then parse the verified copies (never the originals)."""
    with owned_temp_dir("raw") as tmp:
        mismatches = []
        for path, expected in source.files.items():
            origin, data = _raw_bytes(source, path, mirror)
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                mismatches.append(f"{origin}: sha256 {actual} ({len(data)} bytes), expected {expected}")
            target = Path(tmp) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if mismatches:
            raise DataError(
                f"checksum mismatch for {source.name}, nothing was parsed or stored: "
                + "; ".join(mismatches)
                + ". The file is truncated, corrupt or another version: restore the original "
                "(see shared/datasets/SHA256SUMS) and fetch again."
            )
        first = Path(tmp) / next(iter(source.files))
        if source.reader == "planetoid":
            graph = read_planetoid(first.parent, source.name)
        else:
            graph = read_npz(first, source.name)
    graph.meta["raw_sha256"] = dict(source.files)
    return graph


def _split_dir(name: str, split_seed: int, data_dir) -> Path | None:
    """The folder with the masks of ``split_seed`` (written if missing, stale or damaged: it is
    small and derived from the checked ``graph/``), or None when ``graph/`` already holds that
    split or the dataset's split is fixed (Planetoid, user split)."""
    folder = graph_dir(name, data_dir)
    meta = read_meta(folder)
    if meta["split"]["kind"] != "stratified" or meta["split"]["seed"] == split_seed:
        return None
    target = dataset_dir(name, data_dir) / f"split-seed{split_seed}"
    inputs = {"graph": meta["content_hash"]}
    if is_current(target, inputs) and is_intact(target):
        return target
    masks = stratified_split(np.load(folder / "y.npy"), split_seed)
    with atomic_folder(target) as tmp:
        for key, mask in zip(_MASKS, masks):
            np.save(tmp / f"{key}.npy", mask, allow_pickle=False)
        write_meta(tmp, {"split": {**meta["split"], "seed": split_seed}, "inputs": inputs})
    return target


SHARED_MIRROR = Path("..", "shared", "datasets")


def default_mirror() -> str | None:
    """``$DGNN_DATA_MIRROR``, else ``../shared/datasets`` (beside the repository, relative to the
    working directory) when it holds a ``SHA256SUMS``, else None: download from the canonical URLs."""
    if os.environ.get("DGNN_DATA_MIRROR"):
        return os.environ["DGNN_DATA_MIRROR"]
    return str(SHARED_MIRROR) if (SHARED_MIRROR / "SHA256SUMS").is_file() else None


def dataset_kind(name: str, data_dir=None) -> str:
    """Where ``name`` comes from: ``catalogue``, ``synthetic``, ``imported`` (its files kept in
    ``imports/<name>/``, a DVC workspace) or ``stored`` (imported before into the data folder); a
    DataError saying which names exist for any other, checked before anything starts."""
    if name in CATALOGUE:
        return "catalogue"
    if synthetic.parse_name(name) is not None:
        return "synthetic"
    if import_source_dir(name).is_dir():
        return "imported"
    if is_stored(graph_dir(name, data_dir)):
        return "stored"
    raise DataError(
        f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}, "
        f"{synthetic.PREFIX}[hard-]<nodes> (e.g. {synthetic.PRESETS[-1]}), or import your own graph "
        "first with `dgnn import NAME --edges ... --nodes ...`"
    )


def fetch(name: str, data_dir=None, mirror=None, split_seed: int = 0) -> FetchResult:
    """Obtain, verify, validate and store ``name``; return counts, path and content hash.

    Registry and synthetic names, and imported names whose files are kept in ``imports/<name>/``
    (a DVC workspace), are (re)built and written atomically; another imported name is described as
    stored. ``split_seed`` other than 0 also stores that split's masks.
    """
    kind = dataset_kind(name, data_dir)
    if kind == "catalogue":
        result = store_graph(_read_catalogued(CATALOGUE[name], mirror or default_mirror()), data_dir)
    elif kind == "synthetic":
        result = store_graph(synthetic.generate(name), data_dir)
    elif kind == "imported":
        result = store_graph(read_user_graph(name, *source_files(import_source_dir(name))), data_dir)
    else:
        result = FetchResult.from_folder(require_intact(graph_dir(name, data_dir)))
    split = _split_dir(name, split_seed, data_dir)
    if split is not None:
        split_meta = read_meta(split)
        result.split = {**split_meta["split"], "path": str(split.resolve()),
                        "content_hash": split_meta["content_hash"]}
    return result


def ensure_graph(name: str, data_dir=None, mirror=None) -> Path:
    """``<data>/<name>/graph/``, fetched first if it is not stored yet; a DataError naming the
    command that rewrites it if its files changed after it was written."""
    folder = graph_dir(name, data_dir)
    if not is_stored(folder):
        fetch(name, data_dir, mirror)
    return require_intact(folder)


def load_graph(name: str, data_dir=None, mirror=None, split_seed: int = 0, mapped: bool = False) -> Graph:
    """The stored graph (fetched first if missing) with the split of ``split_seed``.

    Fixed splits (Planetoid public split, a user's split column) ignore ``split_seed``.
    ``mapped``: features and edges memory-mapped (:func:`~dgnn.data.graph.load_graph_folder`).
    """
    graph = load_graph_folder(ensure_graph(name, data_dir, mirror), mapped)
    split = _split_dir(name, split_seed, data_dir)
    if split is not None:
        for key in _MASKS:
            setattr(graph, key, torch.from_numpy(np.load(split / f"{key}.npy")))
        graph.meta["split"] = read_meta(split)["split"]
    return graph
