"""Per-step trainer checkpoints of a pipeline run, in its run folder ``<runs dir>/<run key>/``.

Everything here is read with ``torch.load(weights_only=True)`` (:func:`load_tensors`): tensors and
plain containers only, so a file planted in a run folder cannot run code when a run resumes. One
pipeline run at a time holds a run folder (:func:`run_lock`).
"""

from __future__ import annotations

import os
import pickle
import uuid
import zipfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from torch.utils.weak import WeakIdKeyDictionary

from dgnn.data.stage_folders import LockHeld, file_lock, sweep_stale_temps, write_atomically
from dgnn.node_store import PREFIX as ROW_FILE_PREFIX
from dgnn.rowfile import RowFile
from dgnn.trainer import DecoupledTrainer
from dgnn.schedule import Step

LOCK = ".lock"


class CheckpointError(RuntimeError):
    """A run folder's file is not what this version writes; the message says how to rebuild it."""


class DamagedFile(CheckpointError):
    """A run folder's file cannot be read back: truncated, overwritten or missing."""

    def __init__(self, path: Path, problem: str, remedy: str):
        super().__init__(f"{path}: damaged ({problem}); {remedy}")
        self.path, self.problem = path, problem


class RunBusy(RuntimeError):
    """Another pipeline run holds the run folder; the message names its process."""


def step_file(run_dir: Path, index: int, step: Step) -> Path:
    return run_dir / f"{index:02d}-{step.name}.pt"


def load_tensors(path: Path, map_location=None, remedy: str | None = None):
    """``torch.load(path, weights_only=True)``; a file holding anything but tensors and plain
    containers (written by an older dgnn, or planted) raises :class:`CheckpointError`, unread, and
    one that cannot be read back (truncated, overwritten, missing) :class:`DamagedFile`. Both
    messages name the file and end with ``remedy`` (default: delete the run folder and rerun)."""
    path = Path(path)
    remedy = remedy or f"delete {path.parent} and rerun to rebuild it"
    # torch.save writes zip archives; anything else goes to torch's legacy unpickler, whose error
    # would call damage "not plain tensors" and suggest weights_only=False.
    if not zipfile.is_zipfile(path):
        raise DamagedFile(path, "missing" if not path.exists() else "not a whole torch file", remedy)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refusing to load it: not plain tensors (written by an older dgnn, or not by dgnn); {remedy}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise DamagedFile(path, str(err).splitlines()[0], remedy) from None


def save_tensors(value, path: Path) -> None:
    """``torch.save(value, path)``, atomically (a full disk raises :class:`~dgnn.data.errors.NoSpace`
    and leaves no part of a file)."""
    write_atomically(path, lambda tmp: torch.save(value, tmp))


@contextmanager
def run_lock(run_dir: Path):
    """Hold the run folder for this process: an identical run started meanwhile raises
    :class:`RunBusy` instead of writing the same checkpoints. Temporary files of writers that died
    (killed mid-write) are removed once the folder is held."""
    lock = run_dir / LOCK
    with ExitStack() as stack:
        try:
            fd = stack.enter_context(file_lock(lock, wait=False))
        except LockHeld:
            owner = lock.read_text().strip() or "unknown"
            raise RunBusy(f"an identical run (same dataset, config, seeds and data) is already running in "
                          f"process {owner} and holds {run_dir}: wait for it to finish or stop it, then "
                          "rerun") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())  # for the message above
        sweep_stale_temps(run_dir)
        yield


# The node-sized tensors of the trainer state (H_l, Â^p H_l, E_l, the best pass's output and
# prediction) go to files of their own, each written once, and a step's checkpoint names them: a
# module step replaces one or two of them, so it writes those instead of the whole state (at 100k
# nodes and three modules, 256 MB a step). The trainer replaces these tensors and never changes
# one in place, so the same tensor object means the same content. An out-of-core run's node tensors
# are RowFiles in the run folder already, written once: the checkpoint names them.
_TENSOR_FILES = WeakIdKeyDictionary()  # tensor -> (folder, file name)
BEST_TENSORS = ("output", "prediction", "proba")  # the best pass's node tensors
_TENSOR_PREFIX = "tensor-"


def _tensor_ref(tensor: torch.Tensor | RowFile | None, folder: Path) -> dict | None:
    if tensor is None:
        return None
    if isinstance(tensor, RowFile):
        path = tensor.path.resolve()
        return {"row_file": path.name if path.parent == folder.resolve() else str(path)}
    written = _TENSOR_FILES.get(tensor)
    if written is None or written[0] != folder or not (folder / written[1]).exists():
        name = f"{_TENSOR_PREFIX}{uuid.uuid4().hex}.pt"
        save_tensors(tensor, folder / name)
        written = _TENSOR_FILES[tensor] = (folder, name)
    return {"tensor_file": written[1]}


def _tensor_from(ref, folder: Path, device) -> torch.Tensor | RowFile | None:
    if ref is None:
        return None
    if "row_file" in ref:
        return RowFile(folder / ref["row_file"])
    return load_tensors(folder / ref["tensor_file"], device)


def save_checkpoint(trainer: DecoupledTrainer, path: Path) -> None:
    """trainer.state_dict() minus X and P_1 (every trainer is built with both), atomically; the
    node-sized tensors as references to their files."""
    folder = path.parent
    state = trainer.state_dict()
    for key in ("inputs", "propagated", "expected"):  # expected[0] is always None: module 1 has no target
        state[key] = [None, *(_tensor_ref(t, folder) for t in state[key][1:])]
    state["views"] = [None if views is None else [_tensor_ref(t, folder) for t in views] for views in state["views"]]
    if state["labels_in"] is not None:
        labels_in = state["labels_in"]
        state["labels_in"] = {**labels_in, "all": _tensor_ref(labels_in["all"], folder),
                              "splits": [_tensor_ref(t, folder) for t in labels_in["splits"]]}
    if state["best"] is not None:
        state["best"] = {**state["best"], **{k: _tensor_ref(state["best"][k], folder) for k in BEST_TENSORS}}
    save_tensors(state, path)


def load_checkpoint(trainer: DecoupledTrainer, path: Path) -> None:
    folder, device = path.parent, trainer.device
    state = load_tensors(path, device)
    for key in ("inputs", "propagated", "expected"):
        state[key] = [_tensor_from(ref, folder, device) for ref in state[key]]
    state["views"] = [None if refs is None else [_tensor_from(r, folder, device) for r in refs]
                      for refs in state["views"]]
    if state["labels_in"] is not None:
        refs = state["labels_in"]
        state["labels_in"] = {**refs, "all": _tensor_from(refs["all"], folder, device),
                              "splits": [_tensor_from(r, folder, device) for r in refs["splits"]]}
    if state["best"] is not None:
        state["best"] |= {k: _tensor_from(state["best"][k], folder, device) for k in BEST_TENSORS}
    # X and P_1 never change during training, so the freshly built trainer's are the saved ones.
    x, first = trainer.inputs[0], trainer.propagated[0]
    trainer.load_state_dict(state)
    trainer.inputs[0], trainer.propagated[0] = x, first


def remove_checkpoints(run_dir: Path, records: list[dict]) -> None:
    """The per-step trainer checkpoints and their tensor files (module weights, step records and
    predictions stay)."""
    for index, record in enumerate(records):
        step = Step(record["direction"], record["pass_index"], record["module"], record.get("stage", 0))
        step_file(run_dir, index, step).unlink(missing_ok=True)
    for tensor_file in [*run_dir.glob(f"{_TENSOR_PREFIX}*.pt"), *run_dir.glob(f"{ROW_FILE_PREFIX}*.npy")]:
        tensor_file.unlink()
    (run_dir / "model-payload.pt").unlink(missing_ok=True)
