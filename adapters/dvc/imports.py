"""``dgnn import`` in a DVC workspace: the user's graph becomes a dataset with DVC stages.

The two files are checked first (:func:`dgnn.data.user_import.read_user_graph`; nothing is
written when they are invalid), then copied to ``imports/<name>/`` as ``edges.<ext>`` and
``nodes.<ext>`` and tracked there with ``dvc add`` (``imports/<name>.dvc``). A copy rather than
the original paths: the files may lie outside the repository or on one machine only, and
``dvc push`` / ``dvc pull`` carry only what DVC tracks, so another clone gets the files and
``dvc repro`` rebuilds the graph from them. The dataset gets an entry in ``params.yaml``
(``source: imports/<name>`` and :data:`DEFAULT_ENTRY`), and ``dvc repro propagate@<name>`` runs
``fetch@<name>`` (which imports from the copy), ``normalise@<name>`` and ``propagate@<name>``.
Importing the name again replaces the copy: ``dvc repro`` reruns whatever it changes and the
entry keeps any edits made to it. Where the files came from is kept in
``imports/<name>.source.json``, and every pipeline run first :func:`refresh`-es from there
(:mod:`adapters.dvc.sources`).

Outside a DVC workspace (no ``.dvc/``, ``dvc.yaml`` or ``params.yaml`` in the project folder, or
a data folder other than ``<project>/data``) the graph is imported as before, unversioned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import yaml

from dgnn.data import DataError, FetchResult, import_graph, synthetic
from dgnn.data.layout import dataset_dir, graph_dir, import_source_dir
from dgnn.data.catalogue import CATALOGUE
from dgnn.data.stage_folders import write_atomically
from dgnn.data.user_import import read_user_graph
from adapters.process import settings
from adapters.dvc import sources
from adapters.dvc.repo import STAGES, in_workspace, read_params, run_dvc, stage_name

DEFAULT_ENTRY = {"split_seed": 0, "propagate": {"orders": [1, 2, 3, 4], "feature_norm": "row"}}


def workspace_problem(project: Path, data_dir=None) -> str | None:
    """Why an import in ``project`` cannot be versioned by DVC, or None when it can."""
    missing = [name for name in (".dvc", "dvc.yaml", "params.yaml") if not (project / name).exists()]
    if missing:
        return f"{project} is not a DVC workspace of this project (no {', '.join(missing)})"
    if not in_workspace(project, data_dir):
        return f"the data folder is not {project / 'data'}, where the DVC stages write"
    return None


def with_entry(params_text: str, name: str, entry: dict) -> str:
    """``params.yaml`` text with ``datasets.<name>: entry`` added at the end of ``datasets:``;
    every other line (comments included) stays as it was."""
    block = yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=None)
    added = "".join(f"  {line}\n" for line in block.splitlines())
    lines = params_text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "datasets:"), None)
    if start is None:
        return "".join(lines) + "datasets:\n" + added
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", "#", "\n")), len(lines))
    return "".join(lines[:end] + [added] + lines[end:])


def _add_entry(project: Path, name: str, entry: dict) -> None:
    path = project / "params.yaml"
    text = with_entry(path.read_text(), name, entry)
    if (yaml.safe_load(text) or {}).get("datasets") != {**read_params(project), name: entry}:
        raise DataError(f"cannot add {name!r} under `datasets:` of {path}: add this entry yourself\n"
                        + yaml.safe_dump({name: entry}, sort_keys=False))
    write_atomically(path, lambda tmp: tmp.write_text(text))


def _copy_sources(folder: Path, edges: Path, nodes: Path) -> None:
    """``folder`` holding only ``edges.<ext>`` and ``nodes.<ext>`` (the user's extensions)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for stem, path in (("edges", edges), ("nodes", nodes)):
        shutil.copyfile(path, folder / f"{stem}{path.suffix.lower()}")


def import_versioned(name: str, edges, nodes, project: Path, origin: tuple | None = None) -> None:
    """Copy the files into ``imports/<name>/``, track them, add the ``params.yaml`` entry and run
    the dataset's DVC stages; raises :class:`DataError` (files unchanged) when they are invalid.
    ``origin``: where they came from (paths or URLs; default the files themselves), recorded."""
    source = import_source_dir(name)
    entry = read_params(project).get(name)
    if name in CATALOGUE or synthetic.parse_name(name) is not None:  # fetch@<name> would build that
        raise DataError(f"{name!r} is the name of a catalogue or synthetic dataset: import under another name")
    if entry is not None and entry.get("source") != source.as_posix():
        raise DataError(f"{name!r} is already a dataset of {project / 'params.yaml'} built from "
                        f"{entry.get('source')}: import under another name")
    edges, nodes = Path(edges).resolve(), Path(nodes).resolve()
    read_user_graph(name, edges, nodes)  # every problem reported before anything is written
    with _all_or_nothing(project, name):
        _copy_sources(project / source, edges, nodes)
        if entry is None:
            _add_entry(project, name, {"source": source.as_posix(), **DEFAULT_ENTRY})
        run_dvc("add", source.as_posix(), project_dir=project)
        run_dvc("repro", stage_name("propagate", name), project_dir=project)
        sources.remember(project, name, *(origin or (edges, nodes)))


def refresh(name: str, project: Path) -> sources.SourceCheck | None:
    """:func:`adapters.dvc.sources.checked`, and a changed source imported again as a new data
    version (refused with one line, nothing changed, when it does not validate)."""
    if not sources.record_path(project, name).is_file():
        return None  # not imported here, or before sources were kept: nothing to lock
    with sources.lock(project, name), sources.checked(name, project) as found:
        if found is None or found.files is None:
            return found
        before = sources.stored_graph(name, project)
        try:
            import_versioned(name, *found.files, project, origin=sources.origin(project, name))
        except DataError as err:
            raise DataError(f"{name}: the changed source was refused, the previous data version stays: {err}") \
                from None
        return sources.changed(found, before, sources.stored_graph(name, project))


@contextlib.contextmanager
def _all_or_nothing(project: Path, name: str):
    """Undo the import if it fails or is interrupted (Ctrl-C, SIGTERM): ``params.yaml``,
    ``dvc.lock`` and the files under ``imports/`` are put back as they were, and a new dataset's
    ``data/<name>/`` is removed (a re-imported one keeps its stage folders, each whole: ``dvc
    repro`` brings back the old ones). Only ``kill -9`` can leave a half-done import."""
    source = project / import_source_dir(name)
    texts = {path: path.read_bytes() if path.exists() else None for path in (
        project / "params.yaml", project / "dvc.lock", source.parent / ".gitignore",
        source.with_name(f"{source.name}.dvc"), sources.record_path(project, name))}
    data = dataset_dir(name, project / "data")
    new_folders = [folder for folder in (data, source.parent) if not folder.exists()]
    kept = source.with_name(f".{source.name}.tmp-{os.getpid()}")  # the earlier copy, until the import is done
    if source.exists():
        os.replace(source, kept)
    try:
        yield
    except BaseException:
        shutil.rmtree(source, ignore_errors=True)
        if kept.exists():
            os.replace(kept, source)
        for path, text in texts.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                write_atomically(path, lambda tmp, text=text: tmp.write_bytes(text))
        for folder in new_folders:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(kept, ignore_errors=True)


def import_command(name: str, edges, nodes, data_dir=None) -> FetchResult:
    """``dgnn import``: versioned by DVC in a DVC workspace (a note says which files to commit),
    else imported as the library does, with a note saying why it is not versioned. ``edges`` and
    ``nodes`` are paths or URLs that DVC reads (fetched with ``dvc get-url``)."""
    project = settings.project_dir()
    with sources.fetched((edges, nodes), project) as local:
        return _import_fetched(name, local, (edges, nodes), project, data_dir)


def _import_fetched(name: str, local: tuple[Path, Path], refs: tuple, project: Path, data_dir) -> FetchResult:
    problem = workspace_problem(project, data_dir)
    if problem is not None:
        result = import_graph(name, *local, data_dir)  # a bad file raises before any note
        print(f"note: {problem}: {name} is imported into the data folder but NOT versioned by DVC "
              "(runs on it record data_version=untracked); import in the project folder to version it",
              file=sys.stderr)
        return result
    import_versioned(name, *local, project, origin=refs)
    source = import_source_dir(name)
    print(f"note: {name} is versioned by DVC ({', '.join(stage_name(s, name) for s in STAGES)} in "
          f"dvc.lock): commit params.yaml dvc.lock {source}.dvc {source}.source.json {source.parent}/.gitignore, and "
          "`dvc push` to share the files", file=sys.stderr)
    return FetchResult.from_folder(graph_dir(name, data_dir))
