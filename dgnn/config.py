"""Typed configuration: one YAML file describes a run (modules, schedule, selection, evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

Activation = Literal["identity", "relu", "elu", "leaky_relu", "tanh", "sigmoid"]
Task = Literal["classify", "cluster"]


class _Strict(BaseModel):
    # allow_inf_nan=False: every float must be finite (`eta: .inf` would silently train on inf).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModuleConfig(_Strict):
    """One one-layer module: H_l = act(inner_act(Â^order H_{l-1} U_l) W_l)."""

    width: int = Field(gt=0)
    order: int = Field(default=1, ge=0, description="power p of the normalised adjacency")
    filter: Literal["power", "average"] = Field(
        default="power", description="Â^p (paper) or (1-α) mean_{k<=p} Â^k + α I (see dgnn.nn.filters)"
    )
    alpha: float = Field(default=0.0, ge=0, le=1, description="share of H kept by the 'average' filter")
    activation: Activation = "relu"
    inner_activation: Activation = "identity"
    lr: float = Field(default=1e-2, gt=0)
    steps: int = Field(default=100, gt=0, description="SGD steps per training session")
    batch_size: int = Field(default=512, gt=0, description="rows per step (capped at what exists)")
    penalty: float = Field(default=0.0, ge=0, description="λ: L2 (classify) or L1 (cluster) on W and U")
    weight_decay: float = Field(default=0.0, ge=0, description="decoupled weight decay on every parameter")
    input_dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the module input")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the class-head input")
    bias: bool = False


class TrainConfig(_Strict):
    """The schedule of forward/backward training and the selection rules around it."""

    task: Task = "classify"
    modules: list[ModuleConfig] = Field(min_length=1)
    eta: float = Field(default=1.0, ge=0, description="weight of the target term η‖H_l - E_{l+1}‖²")
    bp_count: int = Field(default=1, ge=0, description="backward+forward rounds after FT_0")
    keep_own_loss: bool = Field(
        default=False,
        description="supervised modules keep their cross-entropy when a target exists (the paper drops it)",
    )
    feature_norm: Literal["none", "row"] = "none"
    module_patience: int = Field(
        default=0, ge=0, description="evaluate every 10 steps and keep a module's best; 0 = off (paper)"
    )
    pass_patience: int = Field(default=0, ge=0, description="stop after this many passes without gain; 0 = off")
    mask_rate: float = Field(default=0.2, ge=0, lt=1, description="auto-encoder: share of entries hidden")
    edge_batch_share: float = Field(
        default=0.0, ge=0, le=1,
        description="auto-encoder: share of each batch made of the endpoints of uniformly drawn edges "
                    "(0 = the paper's uniform batches; on sparse graphs a uniform block holds few edges)")
    kmeans_restarts: int = Field(default=10, gt=0)
    kmeans_normalise: bool = Field(
        default=False, validation_alias=AliasChoices("kmeans_normalise", "kmeans_normalize"),
        description="scale embedding rows to unit L2 norm before k-means (cosine geometry); "
                    "configs written before the spelling was unified may say kmeans_normalize"
    )

    @property
    def num_modules(self) -> int:
        return len(self.modules)

    def describe(self) -> str:
        """The architecture in one line, e.g. ``2 modules: p0 w128 relu -> avg8(a=0.3) w64 relu; 1 BT``."""
        def one(m: ModuleConfig) -> str:
            kind = f"p{m.order}" if m.filter == "power" or m.order == 0 else f"avg{m.order}(a={m.alpha:g})"
            return f"{kind} w{m.width} {m.activation}"

        count = f"{self.num_modules} module{'s' if self.num_modules > 1 else ''}"
        return f"{count}: {' -> '.join(one(m) for m in self.modules)}; {self.bp_count} BT"


class RunConfig(_Strict):
    """A dataset plus a training config: what `dgnn train` and the pipeline consume."""

    dataset: str = "cora"
    split_seed: int = 0
    train: TrainConfig


class Portfolio(_Strict):
    """Several candidate configs; each is trained and the best on validation is kept (ties: the
    first listed). The default for graphs without a config of their own."""

    task: Task
    split_seed: int = 0
    candidates: dict[str, TrainConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_task(self) -> Portfolio:
        wrong = [name for name, c in self.candidates.items() if c.task != self.task]
        if wrong:
            raise ValueError(f"candidates {wrong} are not {self.task!r} configs")
        return self


def load_config(path: str | Path) -> RunConfig | Portfolio:
    """Read a YAML run config (``train:``) or portfolio (``candidates:``); pydantic's error names
    the offending field."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a YAML mapping with 'train:' or 'candidates:' at the top level")
    return Portfolio.model_validate(raw) if "candidates" in raw else RunConfig.model_validate(raw)


def config_task(config: RunConfig | Portfolio) -> Task:
    return config.task if isinstance(config, Portfolio) else config.train.task


def first_train(config: RunConfig | Portfolio) -> TrainConfig:
    """The run's train config, or a portfolio's first candidate (what the data stages prepare for)."""
    return next(iter(config.candidates.values())) if isinstance(config, Portfolio) else config.train


CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def default_config_path(dataset: str, task: Task) -> Path:
    """The shipped config for ``dataset``/``task``, falling back to the generic one for the task."""
    specific = CONFIG_DIR / f"{dataset}-{task}.yaml"
    return specific if specific.exists() else CONFIG_DIR / f"default-{task}.yaml"
