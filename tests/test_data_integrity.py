"""Stored data that changed after it was written, full disks and crashed writes, on real files.

A changed byte must stop every load with the command that rewrites that folder; a full disk
must stop a stage before it writes (a memory-mapped write past it is a SIGBUS); temporaries of
crashed writes are swept by the next write.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from dgnn.data import DataError, fetch, load_graph, normalise_stage, propagate_stage, verify
from dgnn.data.stage_folders import VERDICTS, is_intact

CONFIG = """
train:
  modules:
    - {width: 16, order: 2, steps: 10, batch_size: 140}
    - {width: 8, order: 1, steps: 10, batch_size: 140}
"""


def _age(folder, seconds: float = 3600) -> None:
    """Date every file of ``folder`` back, as if written long ago (recent files are not trusted)."""
    past = time.time() - seconds
    for path in folder.iterdir():
        os.utime(path, (past, past))


def _flip(path, offset: int) -> None:
    """Change one byte in place; the size stays the same."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


@pytest.fixture
def cora(shared_datasets, tmp_data_dir, monkeypatch):
    """Cora with its three stages stored and dated an hour back, and a config reading them."""
    monkeypatch.setenv("DGNN_DATA_MIRROR", str(shared_datasets))
    fetch("cora")
    normalise_stage("cora")
    propagate_stage("cora", [2])
    for stage in ("graph", "adj", "propagated"):
        _age(tmp_data_dir / "cora" / stage)
    config = tmp_data_dir.parent / "tiny.yaml"
    config.write_text(CONFIG)
    return config


@pytest.mark.parametrize("file,offset,command", [
    ("graph/y.npy", -8, "dgnn fetch cora"),  # a label 0..6 becomes another, maybe an 8th class
    ("graph/x.npy", -1, "dgnn fetch cora"),
    ("adj/values.npy", -1, "dgnn normalise cora"),
    ("propagated/p2.npy", -1, "dgnn propagate cora --orders 2"),
])
def test_train_refuses_a_changed_stage_and_names_the_command_that_rebuilds_it(
        cora, tmp_data_dir, capsys, file, offset, command):
    from cli.main import main

    train = ["train", "--quiet", "--config", str(cora)]
    assert main(train) == 0  # remembers the clean verdicts
    assert set(json.loads((tmp_data_dir / "cora" / VERDICTS).read_text())) == {"graph", "adj", "propagated"}
    _flip(tmp_data_dir / "cora" / file, offset)
    capsys.readouterr()
    assert main(train) == 2
    err = capsys.readouterr().err.strip()
    folder, name = file.split("/")
    assert err.startswith(f"error: {tmp_data_dir / 'cora' / folder} changed after it was written ({name} differ")
    assert err.endswith(f"rebuild it with `{command}`") and "\n" not in err
    assert main(command.split()[1:]) == 0  # the named command repairs it
    assert main(train) == 0


def test_a_remembered_verdict_is_trusted_until_size_mtime_or_inode_change(cora, tmp_data_dir):
    graph = tmp_data_dir / "cora" / "graph"
    assert is_intact(graph)
    y = graph / "y.npy"
    stat = y.stat()
    _flip(y, -8)
    os.utime(y, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a change no stat can see: bit rot
    assert is_intact(graph)  # the remembered verdict, no hashing
    with pytest.raises(DataError, match=r"graph changed after it was written \(y.npy differ"):
        verify("cora")  # always hashes
    os.utime(y)
    with pytest.raises(DataError, match="rebuild it with `dgnn fetch cora`"):
        load_graph("cora")


def test_a_freshly_written_folder_is_hashed_again(shared_datasets, tmp_data_dir):
    """File times are coarse: a change right after writing can keep the mtime, so no verdict yet."""
    fetch("cora", mirror=shared_datasets)
    assert is_intact(tmp_data_dir / "cora" / "graph")
    assert not (tmp_data_dir / "cora" / VERDICTS).exists()
    _flip(tmp_data_dir / "cora" / "graph" / "y.npy", -8)
    assert not is_intact(tmp_data_dir / "cora" / "graph")


def test_the_message_names_options_data_dir_and_import_files(cora_user_files, tmp_data_dir, tmp_path):
    from dgnn.data import import_graph, load_propagated

    other = tmp_path / "elsewhere"
    import_graph("papers", cora_user_files["edges"], cora_user_files["nodes"], data_dir=other)
    load_propagated("papers", 2, data_dir=other, feature_norm="row")
    _flip(other / "papers" / "propagated" / "p2.npy", -1)
    with pytest.raises(DataError, match=rf"`dgnn propagate papers --orders 2 --feature-norm row --data-dir {other}`"):
        load_propagated("papers", 2, data_dir=other, feature_norm="row")
    _flip(other / "papers" / "graph" / "x.npy", -1)
    with pytest.raises(DataError, match=rf"`dgnn import papers --edges edges.csv --nodes nodes.csv --data-dir {other}`"):
        load_graph("papers", data_dir=other)


def test_a_changed_split_is_rebuilt_from_the_graph(shared_datasets, tmp_data_dir):
    masks = load_graph("cora-ml", mirror=shared_datasets, split_seed=1).train_mask
    split = tmp_data_dir / "cora-ml" / "split-seed1"
    _age(split)
    load_graph("cora-ml", split_seed=1)
    _flip(split / "train_mask.npy", -1)  # the last node becomes a training node (or stops being one)
    assert load_graph("cora-ml", split_seed=1).train_mask.equal(masks)
    assert is_intact(split)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_stage_write_sweeps_temporaries_of_crashed_writers(shared_datasets, tmp_data_dir):
    fetch("cora", mirror=shared_datasets)
    folder = tmp_data_dir / "cora"
    crashed = [folder / f".adj.tmp-{_dead_pid()}-x1", folder / ".propagated.tmp-old8k2"]  # old-style name
    live = folder / f".propagated.tmp-{os.getpid()}-x2"  # a write in progress
    for path in [*crashed, live]:
        path.mkdir()
        (path / "p1.npy").write_bytes(b"0" * 1000)
    (folder / f".{VERDICTS}.tmp-{_dead_pid()}").write_text("{")
    normalise_stage("cora")
    left = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))
    assert left == sorted(["graph", "adj", live.name])


@pytest.fixture
def small_disk(tmp_path):
    """``make(megabytes)`` mounts a tmpfs of that size and returns it; skips where mounting fails."""
    mount = tmp_path / "disk"
    mount.mkdir()

    def make(megabytes: int):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        return mount

    yield make
    subprocess.run(["umount", str(mount)], capture_output=True)


def _megabytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 10**6 + 1


def test_propagate_on_a_full_disk_fails_before_writing(shared_datasets, tmp_path, small_disk):
    staged = tmp_path / "staged"
    fetch("pubmed", data_dir=staged, mirror=shared_datasets)
    normalise_stage("pubmed", staged)
    disk = small_disk(_megabytes(staged) + 20)  # p1 and p2 need 79 MB
    shutil.copytree(staged / "pubmed", disk / "pubmed")
    crashed = disk / "pubmed" / f".propagated.tmp-{_dead_pid()}-x"
    crashed.mkdir()
    (crashed / "p1.npy").write_bytes(bytes(15 * 10**6))
    out = subprocess.run([sys.executable, "-m", "cli.main", "propagate", "pubmed", "--orders", "1", "2",
                          "--data-dir", str(disk)], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr  # the old code died of SIGBUS here (-7)
    err = out.stderr.strip()
    assert "\n" not in err and f"error: propagate failed: writing {disk / 'pubmed' / 'propagated'} needs 79 MB" in err
    free = int(err.split("MB, ")[1].split(" MB free")[0])
    assert 15 <= free < 79  # the crashed write's 15 MB were swept first
    left = sorted(p.name for p in (disk / "pubmed").iterdir() if p.name != VERDICTS and not p.name.endswith(".lock"))
    assert left == ["adj", "graph"]


def test_fetch_does_not_retry_a_full_disk(shared_datasets, small_disk):
    from prefect.states import Failed

    from flows.data_tasks import _transient

    disk = small_disk(1)
    with pytest.raises(OSError) as numpy_full:  # np.save: "N requested and M written", no errno
        fetch("cora", data_dir=disk, mirror=shared_datasets)
    with pytest.raises(OSError) as full:
        (disk / "big").write_bytes(bytes(2 * 10**6))
    assert full.value.errno == errno.ENOSPC
    for error in (numpy_full.value, full.value):
        assert not _transient(None, None, Failed(data=error))
    assert _transient(None, None, Failed(data=ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")))
