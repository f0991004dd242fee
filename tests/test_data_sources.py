"""The source of an imported dataset as each run sees it (:mod:`adapters.dvc.sources`): unchanged,
changed (naming the files to import again) or gone; nothing for a dataset without a record."""

from __future__ import annotations

import shutil

from adapters.dvc import sources


def test_a_source_is_unchanged_changed_or_gone(tmp_path):
    origin, project = tmp_path / "exports", tmp_path / "project"
    origin.mkdir()
    (origin / "edges.csv").write_text("src,dst\na,b\n")
    (origin / "nodes.csv").write_text("node_id,f0\na,1\nb,2\n")
    assert sources.check("evo", project) is None  # never imported with a record

    copies = project / "imports" / "evo"
    copies.mkdir(parents=True)
    for name in ("edges.csv", "nodes.csv"):
        shutil.copy2(origin / name, copies / name)
    sources.remember(project, "evo", origin / "edges.csv", origin / "nodes.csv")
    assert (project / "imports" / "evo.source.json").is_file()
    assert sources.check("evo", project).state == "unchanged"

    (origin / "nodes.csv").write_text("node_id,f0\na,1\nb,3\n")
    found = sources.check("evo", project)
    assert found.state == "changed" and found.files == (origin / "edges.csv", origin / "nodes.csv")

    (origin / "edges.csv").unlink()
    found = sources.check("evo", project)
    assert found.state == "missing" and "using the copy imported before (imports/evo/)" in found.message
