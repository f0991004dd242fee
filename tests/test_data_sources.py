"""The source of an imported dataset as each run sees it (:mod:`adapters.dvc.sources`): unchanged,
changed (naming the files to import again) or out of reach; nothing for a dataset without a
record. Paths, and URLs fetched with ``dvc get-url`` (here from a local HTTP server)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading

import pytest

from adapters.dvc import sources


def _state(project, name="evo"):
    with sources.checked(name, project) as found:
        return found if found is None else (found.state, found.files and [p.read_bytes() for p in found.files],
                                            found.message)


@pytest.fixture
def exported(tmp_path):
    """A folder of the user's two files and a project whose imports/evo/ holds copies of them."""
    origin, project = tmp_path / "exports", tmp_path / "project"
    origin.mkdir()
    (origin / "edges.csv").write_text("src,dst\na,b\n")
    (origin / "nodes.csv").write_text("node_id,f0\na,1\nb,2\n")
    (project / "imports" / "evo").mkdir(parents=True)
    for name in ("edges.csv", "nodes.csv"):
        shutil.copy2(origin / name, project / "imports" / "evo" / name)
    return origin, project


def test_a_source_path_is_unchanged_changed_or_gone(exported):
    origin, project = exported
    assert _state(project) is None  # imported before sources were kept
    sources.remember(project, "evo", origin / "edges.csv", origin / "nodes.csv")
    assert sources.origin(project, "evo") == (str(origin / "edges.csv"), str(origin / "nodes.csv"))
    assert _state(project)[0] == "unchanged"
    (origin / "nodes.csv").write_text("node_id,f0\na,1\nb,3\n")
    state, files, _ = _state(project)
    assert state == "changed" and files == [b"src,dst\na,b\n", b"node_id,f0\na,1\nb,3\n"]
    (origin / "edges.csv").unlink()
    state, _, message = _state(project)
    assert state == "missing" and "using the copy imported before (imports/evo/)" in message


@contextlib.contextmanager
def _http(folder):
    """``folder`` served over HTTP on a free local port: its base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_source_url_is_fetched_by_dvc_each_time(exported):
    origin, project = exported
    with _http(origin) as base:
        sources.remember(project, "evo", f"{base}/edges.csv", f"{base}/nodes.csv")
        assert sources.origin(project, "evo") == (f"{base}/edges.csv", f"{base}/nodes.csv")  # kept as given
        assert _state(project)[0] == "unchanged"
        (origin / "edges.csv").write_text("src,dst\na,b\nb,a\n")
        state, files, _ = _state(project)
        assert state == "changed" and files[0] == b"src,dst\na,b\nb,a\n"
    state, _, message = _state(project)
    assert state == "missing" and f"cannot fetch {base}/edges.csv" in message, message


def test_dgnn_import_reads_urls(cora_user_files, tmp_data_dir, tmp_path, monkeypatch, capsys):
    from adapters.dvc.imports import import_command

    monkeypatch.setenv("DGNN_PROJECT_DIR", str(tmp_path))  # no DVC workspace: imported unversioned
    with _http(cora_user_files["edges"].parent) as base:
        result = import_command("papers", f"{base}/edges.csv", f"{base}/nodes.csv")
    assert result.nodes == 2708 and (tmp_data_dir / "papers" / "graph").is_dir()
    assert "NOT versioned by DVC" in capsys.readouterr().err
