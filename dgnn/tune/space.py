"""The search space of ``dgnn tune``: a YAML file that maps config fields to fixed values or ranges.

Layout (see ``configs/search/classify.yaml``)::

    task: classify
    candidates: ../default-classify.yaml   # a portfolio file; its configs are the first trials
    num_modules: {int: [1, 4]}
    train:        {bp_count: {int: [0, 3]}, eta: {float: [1, 100], log: true}, module_patience: 5}
    modules:      {lr: {float: [0.001, 0.05], log: true}, bias: true}   # one value for every module
    each_module:  {width: {choice: [32, 64, 128]}, order: {int: [0, 16]},  # drawn per module
                   filter: {choice: [average, bank]}, channels: {choice: ["x,low2", "x,low1,high1"]}}
    levers:       {consistency: {use: {choice: [false, true]}, weight: {float: [0.5, 2.0]}},
                   correct_smooth: {use: true}}

A value is a range when it is a mapping with one of ``choice``, ``int`` or ``float`` (plus
``log``); anything else is fixed. A lever (a config section that is off when absent:
``consistency``, ``label_input``, ``self_training``, ``correct_smooth``, ``cluster_refine``) is on when its ``use``
is (drawn or fixed), and then its other fields are drawn as ``<lever>.<field>``. A module's
``channels`` (written ``"x,low2"``) are kept only when its filter is ``bank``. Trials are asked for values through the Optuna trial interface
(``suggest_int``, ``suggest_float``, ``suggest_categorical``), so this module needs no Optuna.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dgnn.config import (ClusterRefine, Consistency, CorrectSmooth, LabelInput, ModuleConfig, SelfTraining, Task,
                         TrainConfig)

LEVERS = {"consistency": Consistency, "label_input": LabelInput, "self_training": SelfTraining,
          "correct_smooth": CorrectSmooth, "cluster_refine": ClusterRefine}

SEARCH_DIR = Path(__file__).resolve().parents[2] / "configs" / "search"


class Suggester(Protocol):
    """What a search needs from an Optuna trial."""

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_categorical(self, name: str, choices: list) -> Any: ...


class Range(BaseModel):
    """One searched value: ``choice`` (categorical), ``int`` or ``float`` bounds, optionally ``log``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    choice: list | None = None
    int_: tuple[int, int] | None = Field(default=None, alias="int")
    float_: tuple[float, float] | None = Field(default=None, alias="float")
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Range:
        kinds = [k for k in (self.choice, self.int_, self.float_) if k is not None]
        if len(kinds) != 1:
            raise ValueError("a range has exactly one of 'choice', 'int' or 'float'")
        bounds = self.int_ or self.float_
        if bounds is not None and bounds[0] > bounds[1]:
            raise ValueError(f"range bounds {list(bounds)} are reversed")
        if self.choice is not None and not self.choice:
            raise ValueError("'choice' is empty")
        return self

    def draw(self, trial: Suggester, name: str):
        if self.choice is not None:
            return trial.suggest_categorical(name, self.choice)
        if self.int_ is not None:
            return trial.suggest_int(name, *self.int_, log=self.log)
        return trial.suggest_float(name, *self.float_, log=self.log)


def _is_range(value) -> bool:
    return isinstance(value, dict) and bool({"choice", "int", "float"} & value.keys())


def _draw_fields(fields: dict[str, Any], trial: Suggester, prefix: str = "") -> dict[str, Any]:
    return {key: Range.model_validate(value).draw(trial, prefix + key) if _is_range(value) else value
            for key, value in fields.items()}


class SearchSpace(BaseModel):
    """A search space over :class:`~dgnn.config.TrainConfig` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    task: Task
    candidates: Path | None = None
    num_modules: Any = 1
    train: dict[str, Any] = {}
    modules: dict[str, Any] = {}
    each_module: dict[str, Any] = {}
    levers: dict[str, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _known_fields(self) -> SearchSpace:
        for lever, fields in self.levers.items():
            model = LEVERS.get(lever)
            if model is None:
                raise ValueError(f"levers: unknown lever {lever!r}, use one of {sorted(LEVERS)}")
            unknown = set(fields) - set(model.model_fields) - {"use"}
            if unknown:
                raise ValueError(f"levers.{lever}: unknown field(s) {sorted(unknown)}")
        for where, fields, model in (("train", self.train, TrainConfig), ("modules", self.modules, ModuleConfig),
                                     ("each_module", self.each_module, ModuleConfig)):
            unknown = set(fields) - set(model.model_fields) - {"modules", "task"}
            if unknown:
                raise ValueError(f"{where}: unknown config field(s) {sorted(unknown)}")
            for key, value in fields.items():
                if _is_range(value):
                    Range.model_validate(value)
        return self

    def suggest(self, trial: Suggester) -> TrainConfig:
        """Draw one config; parameter names are the field names (``m2.order`` for module 2)."""
        count = (Range.model_validate(self.num_modules).draw(trial, "num_modules")
                 if _is_range(self.num_modules) else self.num_modules)
        shared = _draw_fields(self.modules, trial)
        modules = [_bank_channels(shared | _draw_fields(self.each_module, trial, f"m{i + 1}."))
                   for i in range(count)]
        levers = {}
        for lever, fields in self.levers.items():
            use = _draw_fields({"use": fields.get("use", True)}, trial, f"{lever}.")["use"]
            if use:
                levers[lever] = _draw_fields({k: v for k, v in fields.items() if k != "use"}, trial, f"{lever}.")
        return TrainConfig.model_validate(
            _draw_fields(self.train, trial) | levers | {"task": self.task, "modules": modules})


def _bank_channels(module: dict[str, Any]) -> dict[str, Any]:
    """A drawn module's ``channels`` as a tuple when its filter is a bank, else left out."""
    channels = module.pop("channels", None)
    if module.get("filter") == "bank" and channels is not None:
        module["channels"] = tuple(c.strip() for c in str(channels).split(","))
    return module


def load_search_space(path: str | Path) -> SearchSpace:
    """Read a search-space YAML; ``candidates`` is resolved relative to the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a YAML mapping with 'task:' at the top level")
    space = SearchSpace.model_validate(raw)
    if space.candidates is not None and not space.candidates.is_absolute():
        space = space.model_copy(update={"candidates": (path.parent / space.candidates).resolve()})
    return space


def default_search_space(task: Task) -> Path:
    """The shipped search space of ``task``."""
    return SEARCH_DIR / f"{task}.yaml"
