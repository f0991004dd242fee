"""A training run taken one module step at a time, each step checkpointed in the run's folder.

The pipeline runs one Prefect task per step; :class:`StepwiseRun` is what each task calls. After
step ``i`` the folder holds ``NN-<step>.pt`` (the trainer state, :mod:`dgnn.checkpoint`),
``NN-<step>.json`` (the step's record: losses, validation score, the pass it closed) and
``NN-<step>.module.pt`` (the module's weights). A step whose record exists is not run again, so a
rerun after a failure resumes; checkpoints carry the RNG states, so the result equals an
uninterrupted run and ``dgnn train``. Within one process the trainer the last step left is kept in
memory; another process (a Dask worker, a resumed run) reads the checkpoint instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from dgnn.checkpoint import (DamagedFile, load_checkpoint, remove_checkpoints, run_lock, save_checkpoint,
                             save_tensors, step_file)
from dgnn.config import TrainConfig
from dgnn.data.stages import MapBlocks, run_blocks
from dgnn.data.stage_folders import file_sha256, write_atomically
from dgnn.inputs import Inputs, load_inputs
from dgnn.trainer import DecoupledTrainer
from dgnn.schedule import next_stage, schedule
from dgnn.results import FitResult

_log = logging.getLogger(__name__)


def run_key(dataset: str, train: TrainConfig, seed: int, split_seed: int, data_version: str) -> str:
    """Names the run folder: same inputs, same folder, so a rerun resumes."""
    text = json.dumps({"dataset": dataset, "train": train.model_dump(mode="json"), "seed": seed,
                       "split_seed": split_seed, "data_version": data_version}, sort_keys=True)
    return f"{dataset}-{train.task}-s{seed}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@lru_cache(maxsize=4)
def stage_inputs(dataset: str, root: str, split_seed: int, version: str, mapped: bool = False) -> Inputs:
    """The stored inputs of ``dataset``, shared by the runs and trials of this process;
    ``version`` (the data's content hash) is only part of the cache key: new data, new inputs.
    ``mapped``: :func:`~dgnn.seeds.load_inputs`'s (out-of-core runs)."""
    return load_inputs(dataset, data_dir=root, split_seed=split_seed, mapped=mapped)


@dataclass(frozen=True)
class RunSpec:
    """What a run trains, on which stored data, and where its folder lives."""

    dataset: str
    train: TrainConfig
    seed: int
    split_seed: int
    device: str
    data_root: str
    data_content_hash: str
    runs_dir: Path
    out_of_core: bool = False  # node tensors as files in the run folder (the same numbers)

    @property
    def key(self) -> str:
        return run_key(self.dataset, self.train, self.seed, self.split_seed, self.data_content_hash)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.key


class StepwiseRun:
    """The steps of one run (:func:`dgnn.schedule.schedule`), each run by :meth:`step`.

    ``map_blocks``: where an out-of-core run's propagation blocks run (this process by default).
    """

    def __init__(self, spec: RunSpec, map_blocks: MapBlocks = run_blocks):
        self.spec = spec
        self.map_blocks = map_blocks
        self.plan = schedule(spec.train.num_modules, spec.train.bp_count, spec.train.stages)
        self._live: tuple[int, DecoupledTrainer, torch.Tensor] | None = None

    def __getstate__(self) -> dict:  # another process reads the checkpoints, not this one's memory
        return {**self.__dict__, "_live": None}

    def inputs(self) -> Inputs:
        s = self.spec
        return stage_inputs(s.dataset, s.data_root, s.split_seed, s.data_content_hash, s.out_of_core)

    def lock(self):
        """Hold the run folder for this process (:func:`dgnn.checkpoint.run_lock`)."""
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        return run_lock(self.spec.run_dir)

    def _trainer_after(self, index: int) -> DecoupledTrainer:
        """The trainer as saved after step ``index`` (a fresh one for -1).

        A checkpoint that cannot be read back (or a tensor file it names) is reported and its step
        trained again, from the latest earlier step whose checkpoint loads: checkpoints carry the
        RNG states, so the result is the one the damaged file held."""
        live, self._live = self._live, None  # taken: a step that fails leaves no half-trained trainer
        if live is not None and live[0] == index:
            torch.set_rng_state(live[2])  # what loading the checkpoint would restore
            return live[1]
        inputs, spec = self.inputs(), self.spec
        store = inputs.disk_store(spec.run_dir, spec.device, self.map_blocks) if spec.out_of_core else None
        trainer = inputs.trainer(spec.train, spec.seed, spec.device, store=store)
        loaded = index
        while loaded >= 0:
            try:
                load_checkpoint(trainer, self._checkpoint(loaded))  # a failed load leaves the trainer as it was
                break
            except DamagedFile as err:
                if not self._checkpoint(loaded).with_suffix(".json").exists():
                    raise  # not a step that ran
                _log.warning(f"{err.path}: damaged ({err.problem}): step {self.plan[loaded].name} is trained again")
                self._checkpoint(loaded).with_suffix(".json").unlink()
                loaded -= 1
        for again in range(loaded + 1, index + 1):
            self._run(trainer, again)
        return trainer

    def step(self, index: int, on_sgd=None) -> dict:
        """Run step ``index`` (or read its record if it already ran); returns its record, with
        ``resumed`` saying which. ``on_sgd``: :meth:`DecoupledTrainer.run_step`'s progress hook."""
        record = self._record(index, report=True)
        if record is not None:
            return {**record, "resumed": True}
        trainer = self._trainer_after(index - 1)
        record = self._run(trainer, index, on_sgd)
        self._live = (index, trainer, torch.get_rng_state())
        return {**record, "resumed": False}

    def _run(self, trainer: DecoupledTrainer, index: int, on_sgd=None) -> dict:
        """Train step ``index`` on ``trainer`` (left as the step leaves it); save and return its record."""
        step, ckpt = self.plan[index], self._checkpoint(index)
        result, closed = trainer.advance(step, on_sgd)
        stop = closed is not None and trainer.should_stop()
        following = next_stage(self.plan, index) if stop else index + 1
        record = {
            "index": index, "name": step.name, "direction": step.direction, "pass_index": step.pass_index,
            "module": step.module, "stage": step.stage, "losses": result.losses, "loss_times": result.loss_times,
            "val_metric": result.val_metric, "seconds": result.seconds, "steps_run": result.steps_run,
            "pass": None if closed is None else asdict(closed),
            "stop": following == len(self.plan), "next": following,
        }
        save_tensors(trainer.modules[step.module].state_dict(), self.module_file(index))
        save_checkpoint(trainer, ckpt)
        trainer.store.collect(trainer.node_tensors())  # what only earlier checkpoints named
        record["files"] = {p.name: file_sha256(p) for p in (ckpt, self.module_file(index))}
        write_atomically(ckpt.with_suffix(".json"),
                         lambda tmp: tmp.write_text(json.dumps(record, indent=2, default=float)))
        return record

    def _checkpoint(self, index: int) -> Path:
        """The trainer state after step ``index``; its record and module weights lie beside it."""
        return step_file(self.spec.run_dir, index, self.plan[index])

    def done(self, index: int) -> bool:
        """Whether step ``index`` ran already (its checkpoint and record are saved, and its files
        are the ones it wrote)."""
        return self._record(index) is not None

    def _record(self, index: int, report: bool = False) -> dict | None:
        """The record of step ``index`` if the step is done, else None. With ``report``, a record
        or step file changed since the step wrote it (truncated, overwritten) is logged as a
        warning naming it: the step runs again. A checkpoint removed after a finished run is no
        damage."""
        ckpt, name = self._checkpoint(index), self.plan[index].name
        try:
            record = json.loads(ckpt.with_suffix(".json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            if report:
                _log.warning(f"{ckpt.with_suffix('.json')}: damaged ({err}): step {name} is trained again")
            return None
        files = record.get("files", {ckpt.name: None})  # records written before their files' digests
        changed = [n for n, digest in files.items() if (self.spec.run_dir / n).exists()
                   and digest is not None and file_sha256(self.spec.run_dir / n) != digest]
        if changed and report:
            _log.warning(f"{', '.join(str(self.spec.run_dir / n) for n in changed)}: damaged (changed after step "
                         f"{name} wrote it): the step is trained again")
        return record if ckpt.exists() and not changed else None

    def module_file(self, index: int) -> Path:
        """The weights of the module that step ``index`` trained."""
        return self._checkpoint(index).with_suffix(".module.pt")

    def losses(self, index: int) -> list[float]:
        return json.loads(self._checkpoint(index).with_suffix(".json").read_text())["losses"]

    def evaluate(self, records: list[dict]) -> tuple[FitResult, DecoupledTrainer]:
        """After the steps in ``records``: what :meth:`DecoupledTrainer.fit` would return, and the
        trainer with the selected pass's weights restored (its predictions and embedding are saved
        to ``predictions.pt``)."""
        trainer = self._trainer_after(records[-1]["index"])
        trainer.restore_best()
        trainer.post_process()  # done already when post_process() ran in this process
        save_tensors({"prediction": trainer.predict().cpu(), "embedding": trainer.embed().cpu()},
                     self.spec.run_dir / "predictions.pt")
        return trainer.result(sum(r["seconds"] for r in records)), trainer

    def post_process(self, records: list[dict]) -> dict | None:
        """The config's post-processing of the selected pass after the steps in ``records``
        (:meth:`DecoupledTrainer.post_process`); the trainer stays for :meth:`evaluate`."""
        index = records[-1]["index"]
        trainer = self._trainer_after(index)
        trainer.restore_best()
        choice = trainer.post_process()
        self._live = (index, trainer, torch.get_rng_state())
        return choice

    def remove_checkpoints(self, records: list[dict]) -> None:
        remove_checkpoints(self.spec.run_dir, records)

