"""Where an imported dataset's files came from, remembered by ``dgnn import`` and checked before
every pipeline run on it (issue 22).

``dgnn import`` in a DVC workspace writes ``imports/<name>.source.json`` (the two files' absolute
paths, or URLs as given: any URL DVC reads, fetched with ``dvc get-url``) beside
``imports/<name>.dvc``. :func:`checked` compares those files with the copies under
``imports/<name>/``:

* unchanged: nothing is done (the pipeline then says so, and does not retrain a data version and
  config it trained already);
* changed: they are imported again (:func:`adapters.dvc.imports.refresh`: validated first, then
  copied, ``dvc add`` and ``dvc repro``), a new DVC data version; a version that does not validate
  is refused with one line and the previous version, its stages and ``dvc.lock`` stay as they
  were. The drift between the versions comes back (:func:`dgnn.data.drift.drift_summary`);
* gone (a file moved or deleted, a URL out of reach): the copy in the workspace is used, with a
  warning.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from dgnn.data import DataError
from dgnn.data.drift import drift_summary
from dgnn.data.graph import load_graph_folder
from dgnn.data.layout import dataset_dir, graph_dir, import_source_dir
from dgnn.data.stage_folders import file_lock, file_sha256, is_stored, write_atomically
from dgnn.data.user_import import source_files
from dgnn.processes import owned_temp_dir
from adapters.dvc.repo import DvcError, run_dvc


@dataclass(frozen=True)
class SourceCheck:
    state: str  # "unchanged", "changed" or "missing"
    message: str
    drift: dict | None = None
    files: tuple[Path, Path] | None = None  # (edges, nodes) to import again, when changed


def record_path(project: Path, name: str) -> Path:
    source = project / import_source_dir(name)
    return source.with_name(f"{source.name}.source.json")


def is_url(ref: str) -> bool:
    return "://" in str(ref)


def remember(project: Path, name: str, edges, nodes) -> None:
    """Record where the two files of ``name`` came from: URLs as given, paths made absolute."""
    refs = {k: str(ref) if is_url(ref) else str(Path(ref).resolve()) for k, ref in (("edges", edges), ("nodes", nodes))}
    text = json.dumps(refs, indent=1) + "\n"
    write_atomically(record_path(project, name), lambda tmp: tmp.write_text(text))


def origin(project: Path, name: str) -> tuple[str, str]:
    """(edges, nodes) as :func:`remember` recorded them."""
    refs = json.loads(record_path(project, name).read_text())
    return refs["edges"], refs["nodes"]


@contextlib.contextmanager
def fetched(refs: tuple, project: Path) -> Iterator[tuple[Path, Path]]:
    """The files ``refs`` (paths or URLs) as local paths while the block runs: a URL is fetched by
    ``dvc get-url`` (any remote DVC reads: http(s), s3, gs, azure, ssh, ...) into a temporary folder
    that goes afterwards; a URL that cannot be fetched raises :class:`DataError`."""
    with owned_temp_dir("source") as tmp:
        local = []
        for stem, ref in zip(("edges", "nodes"), refs):
            if not is_url(ref):
                local.append(Path(ref))
                continue
            dest = Path(tmp) / f"{stem}{Path(urlparse(str(ref)).path).suffix.lower()}"
            try:
                run_dvc("get-url", str(ref), str(dest), project_dir=project)
            except DvcError as err:
                raise DataError(f"cannot fetch {ref}: {err}") from None
            local.append(dest)
        yield local[0], local[1]


def lock(project: Path, name: str):
    """Held while a source is checked and imported again: two scheduled runs import it once."""
    return file_lock(dataset_dir(name, project / "data").with_name(f".{name}.source.lock"))  # data/: git-ignored


@contextlib.contextmanager
def checked(name: str, project: Path) -> Iterator[SourceCheck | None]:
    """The state of ``name``'s source against the workspace's copies (a "changed" check names the
    files to import again, readable while the block runs); None for a dataset without a record (a
    catalogue dataset, or one imported before sources were kept)."""
    if not record_path(project, name).is_file():
        yield None
        return
    refs = origin(project, name)
    with contextlib.ExitStack() as stack:
        try:
            files = stack.enter_context(fetched(refs, project))
        except DataError as err:
            yield _missing(name, f"its source is out of reach ({err})")
            return
        yield _compared(name, project, refs, files)


def _missing(name: str, why: str) -> SourceCheck:
    return SourceCheck("missing", f"{name}: {why}: using the copy imported before ({import_source_dir(name)}/)")


def _compared(name: str, project: Path, refs: tuple[str, str], files: tuple[Path, Path]) -> SourceCheck:
    shown = ", ".join(refs)
    if not all(p.is_file() for p in files):
        return _missing(name, f"its source files are gone ({shown})")
    copies = source_files(project / import_source_dir(name))
    if [file_sha256(p) for p in files] == [file_sha256(p) for p in copies]:
        return SourceCheck("unchanged", f"{name}: source unchanged since its import ({shown})")
    return SourceCheck("changed", f"{name}: the source changed", files=files)


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
