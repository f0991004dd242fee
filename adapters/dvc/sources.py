"""Where an imported dataset's files came from, remembered by ``dgnn import`` and checked before
every pipeline run on it (issue 22).

``dgnn import`` in a DVC workspace writes ``imports/<name>.source.json`` (the two files' absolute
paths) beside ``imports/<name>.dvc``. :func:`check` compares those files with the copies under
``imports/<name>/``:

* unchanged: nothing is done (the pipeline then says so, and does not retrain a data version and
  config it trained already);
* changed: they are imported again (:func:`adapters.dvc.imports.import_versioned`: validated
  first, then copied, ``dvc add`` and ``dvc repro``), a new DVC data version; a version that does
  not validate is refused with one line and the previous version, its stages and ``dvc.lock``
  stay as they were. The drift between the versions comes back (:func:`dgnn.data.drift.drift_summary`);
* gone (a file moved or deleted): the copy in the workspace is used, with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dgnn.data.drift import drift_summary
from dgnn.data.graph import load_graph_folder
from dgnn.data.layout import dataset_dir, graph_dir, import_source_dir
from dgnn.data.stage_folders import file_lock, file_sha256, is_stored, write_atomically
from dgnn.data.user_import import source_files


@dataclass(frozen=True)
class SourceCheck:
    state: str  # "unchanged", "changed" or "missing"
    message: str
    drift: dict | None = None
    files: tuple[Path, Path] | None = None  # (edges, nodes) to import again, when changed


def record_path(project: Path, name: str) -> Path:
    source = project / import_source_dir(name)
    return source.with_name(f"{source.name}.source.json")


def remember(project: Path, name: str, edges: Path, nodes: Path) -> None:
    """Record the two files ``name`` was imported from."""
    text = json.dumps({"edges": str(Path(edges).resolve()), "nodes": str(Path(nodes).resolve())}, indent=1) + "\n"
    write_atomically(record_path(project, name), lambda tmp: tmp.write_text(text))


def lock(project: Path, name: str):
    """Held while a source is checked and imported again: two scheduled runs import it once."""
    return file_lock(dataset_dir(name, project / "data").with_name(f".{name}.source.lock"))  # data/: git-ignored


def check(name: str, project: Path) -> SourceCheck | None:
    """The state of ``name``'s source files against the workspace's copies (a "changed" check
    names the files to import again); None for a dataset without a record (a registry dataset,
    or one imported before sources were kept)."""
    record = record_path(project, name)
    if not record.is_file():
        return None
    origin = json.loads(record.read_text())
    edges, nodes = Path(origin["edges"]), Path(origin["nodes"])
    if not (edges.is_file() and nodes.is_file()):
        return SourceCheck("missing", f"{name}: its source files are gone ({edges}, {nodes}): using the copy "
                                      f"imported before ({import_source_dir(name)}/)")
    copies = source_files(project / import_source_dir(name))
    if [file_sha256(p) for p in (edges, nodes)] == [file_sha256(p) for p in copies]:
        return SourceCheck("unchanged", f"{name}: source unchanged since its import ({edges}, {nodes})")
    return SourceCheck("changed", f"{name}: the source changed", files=(edges, nodes))


def stored_graph(name: str, project: Path):
    """The workspace's graph of ``name`` as stored now, or None."""
    folder = graph_dir(name, project / "data")
    return load_graph_folder(folder) if is_stored(folder) else None


def changed(found: SourceCheck, before, after) -> SourceCheck:
    """``found`` once its files are the new data version: with the drift from ``before``."""
    drift = None if before is None else drift_summary(before, after)
    moved = "" if drift is None else (f": nodes {drift['nodes']['before']} -> {drift['nodes']['after']}, edges "
                                      f"{drift['edges']['before']} -> {drift['edges']['after']}")
    return SourceCheck("changed", f"{found.message}, imported as a new data version{moved}", drift)
