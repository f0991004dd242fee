"""A run folder's files when the disk fills up or a file is damaged afterwards: the real stepwise
run of a small synthetic graph (no Prefect), its files written on a real (tmpfs) file system."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dgnn.checkpoint import DamagedFile, load_tensors
from dgnn.config import TrainConfig
from dgnn.data.errors import NoSpace
from dgnn.stepwise import RunSpec, StepwiseRun

from flows_conftest import TINY  # tests/ is on sys.path

DATASET = "synthetic-csbm-400"


def _spec(data_dir: Path, runs_dir: Path) -> RunSpec:
    train = TrainConfig.model_validate({**TINY["train"], "feature_norm": "none"})
    return RunSpec(DATASET, train, 0, 0, "cpu", str(data_dir), "test-data", runs_dir)


def _run_all(run: StepwiseRun) -> list[dict]:
    with run.lock():
        return [run.step(i) for i in range(len(run.plan))]


@pytest.fixture
def finished(tmp_data_dir, tmp_path):
    """A run whose six steps are done, and the spec to run it again (as another process would)."""
    spec = _spec(tmp_data_dir, tmp_path / "runs")
    return spec, _run_all(StepwiseRun(spec))


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def test_truncated_checkpoint_is_named_and_its_step_trained_again(finished, caplog):
    spec, records = finished
    run = StepwiseRun(spec)
    checkpoint = run._checkpoint(3)
    _truncate(checkpoint)
    assert not run.done(3) and run.done(2)
    with caplog.at_level(logging.WARNING, "dgnn.stepwise"):
        again = _run_all(run)
    assert [r["resumed"] for r in again] == [True, True, True, False, True, True]
    assert again[3]["losses"] == records[3]["losses"]  # the checkpoints carry the RNG states
    assert [r.getMessage() for r in caplog.records] == [
        f"{checkpoint}: damaged (changed after step {run.plan[3].name} wrote it): the step is trained again"]
    load_tensors(checkpoint)  # whole again


def test_damaged_tensor_file_of_a_checkpoint_is_named_and_rebuilt(finished, caplog):
    spec, records = finished
    tensor_files = sorted(spec.run_dir.glob("tensor-*.pt"), key=lambda p: p.stat().st_mtime_ns)
    tensor_files[-1].write_bytes(b"not a torch file")  # one the last checkpoints name
    run = StepwiseRun(spec)
    with caplog.at_level(logging.WARNING, "dgnn.stepwise"):
        fit, _ = run.evaluate(records)  # loads the last checkpoint
    messages = [r.getMessage() for r in caplog.records]
    assert messages and all(m.startswith(f"{tensor_files[-1]}: damaged (not a whole torch file): step ")
                            for m in messages), messages
    assert fit.metrics == StepwiseRun(spec).evaluate(records)[0].metrics


def test_damaged_file_raises_one_line_naming_it_never_torchs_hint(tmp_path):
    for content in (b"", b"PK\x03\x04 cut short", b"\x80\x02garbage"):
        path = tmp_path / "01-FT0-m2.pt"
        path.write_bytes(content)
        with pytest.raises(DamagedFile) as caught:
            load_tensors(path)
        assert str(caught.value).startswith(f"{path}: damaged (") and "\n" not in str(caught.value)
        assert "weights_only" not in str(caught.value)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (as root, in CI); skipped where mounting is not allowed."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def test_full_runs_disk_says_so_and_leaves_no_partial_file(tmp_data_dir, small_disk):
    spec = _spec(tmp_data_dir, small_disk / "runs")
    run = StepwiseRun(spec)
    filler = small_disk / "filler"
    with run.lock():
        run.step(0)
        with open(filler, "wb") as f:  # all but a few KB of what is left
            f.write(b"\0" * (shutil.disk_usage(small_disk).free - 8192))
        with pytest.raises(NoSpace) as caught:
            run.step(1)
    message = str(caught.value)
    assert message.startswith(f"writing {spec.run_dir}/") and f"the disk is full (0 MB free in {spec.run_dir})" \
        in message and "free space there and rerun" in message, message
    left = sorted(p.name for p in spec.run_dir.iterdir())
    assert not [name for name in left if name.startswith(("01-", ".01-", ".tensor-"))], left
    filler.unlink()
    with run.lock():  # with room again, the same run goes on
        assert not run.step(1)["resumed"]
