"""Typed configuration: one YAML file describes a run (modules, schedule, selection, evaluation)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

FeatureNorm = Literal["none", "row"]  # see dgnn.propagation.normalise_features
FEATURE_NORMS = get_args(FeatureNorm)

Activation = Literal["identity", "relu", "elu", "leaky_relu", "tanh", "sigmoid"]
Task = Literal["classify", "cluster"]
# What validation score selects a pass, a portfolio candidate and a tune trial (classification).
SelectMetric = Literal["acc", "macro_f1", "roc_auc"]


class _Strict(BaseModel):
    # allow_inf_nan=False: every float must be finite (`eta: .inf` would silently train on inf).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


CHANNEL = re.compile(r"(x)|(low|high|avg)([1-9]\d?)")


def parse_channel(name: str) -> tuple[str, int]:
    """A filter-bank channel name as (kind, hops): ``x`` -> ("x", 0), ``low2`` -> ("low", 2)."""
    match = CHANNEL.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown filter-bank channel {name!r}: use x, low<k>, high<k> or avg<k> (k 1-99)")
    return ("x", 0) if match[1] else (match[2], int(match[3]))


class ModuleConfig(_Strict):
    """One one-layer module: H_l = act(inner_act(Â^order H_{l-1} U_l) W_l)."""

    width: int = Field(gt=0, le=65536)
    order: int = Field(default=1, ge=0, le=64, description="power p of the normalised adjacency")
    filter: Literal["power", "average", "lazy", "bank"] = Field(
        default="power", description="Â^p (paper), (1-α) mean_{k<=p} Â^k + α I, (α I + (1-α) Â)^p, or "
                                     "a bank of channels side by side (see dgnn.nn.filters)"
    )
    channels: tuple[str, ...] = Field(
        default=(), description="the 'bank' filter's channels: x, low<k> (Â^k), high<k> ((I-Â)^k), "
                                "avg<k> (mean of Â^1..Â^k); each a copy of the input's width")
    alpha: float = Field(default=0.0, ge=0, le=1, description="share of H kept by the 'average' and "
                                                                  "'lazy' filters")
    activation: Activation = "relu"
    inner_activation: Activation = "identity"
    lr: float = Field(default=1e-2, gt=0)
    steps: int = Field(default=100, gt=0, le=100_000_000, description="SGD steps per training session")
    batch_size: int = Field(default=512, gt=0, description="rows per step (capped at what exists)")
    penalty: float = Field(default=0.0, ge=0, description="λ: L2 (classify) or L1 (cluster) on W and U")
    weight_decay: float = Field(default=0.0, ge=0, description="decoupled weight decay on every parameter")
    input_dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the module input")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the class-head input")
    bias: bool = False

    @model_validator(mode="after")
    def _bank_has_channels(self) -> ModuleConfig:
        if self.filter == "bank":
            if not self.channels:
                raise ValueError("filter 'bank' needs channels, e.g. [x, low2, high1]")
            for channel in self.channels:
                parse_channel(channel)
        elif self.channels:
            raise ValueError(f"channels are only read by filter 'bank', not by {self.filter!r}")
        return self


class Consistency(_Strict):
    """Consistency regularisation over DropNode views (GRAND's, computed once): each module input
    is propagated ``views`` times with a random share ``drop_rate`` of its rows zeroed (the rest
    scaled by 1/(1-drop_rate)); an SGD step classifies its batch under two random views and pulls
    both predictions of unlabelled rows towards their sharpened mean. Modules that do not
    propagate (order 0) train as without it."""

    views: int = Field(default=4, ge=2, le=16, description="DropNode propagations per module input")
    drop_rate: float = Field(default=0.5, gt=0, lt=1, description="share of rows dropped in a view")
    weight: float = Field(default=1.0, ge=0, description="weight of the consistency term")
    temperature: float = Field(default=0.5, gt=0, le=1, description="sharpening of the mean prediction")
    batch_size: int = Field(default=512, gt=0, le=1 << 20, description="unlabelled rows per SGD step")


class LabelInput(_Strict):
    """Training labels as input: one-hot labels of training nodes, propagated by the averaged filter,
    join the last module's input. While training, a random share ``share`` of the training nodes
    shows its labels and the batch is drawn from the others, so no node sees its own label;
    ``splits`` such partitions are propagated once. Validation and test labels are never read."""

    order: int = Field(default=8, ge=1, le=64)
    alpha: float = Field(default=0.0, ge=0, le=1, description="share of the label rows kept unpropagated")
    share: float = Field(default=0.5, gt=0, lt=1, description="share of training nodes whose labels are input")
    splits: int = Field(default=4, ge=1, le=16, description="random partitions propagated once")


class SelfTraining(_Strict):
    """Self-training stages: after a stage (a whole FT/BT schedule), unlabelled nodes predicted with
    probability >= ``threshold`` by the best pass so far become pseudo-labelled training nodes of
    the next stage, which trains freshly initialised modules. Validation nodes are never
    pseudo-labelled, so validation stays a fair judge of every stage."""

    stages: int = Field(default=1, ge=1, le=5, description="stages after the first")
    threshold: float = Field(default=0.9, gt=0, lt=1)
    per_class: int = Field(default=0, ge=0, description="at most this many per class, most confident "
                                                        "first (0: no cap)")


class CorrectSmooth(_Strict):
    """Post-processing of the selected pass's class probabilities over the graph (Correct and
    Smooth): the training nodes' errors are spread with weight ``correct_alpha`` and added (scaled
    to each row's error size), then the result, training rows set to their labels, is smoothed
    with weight ``smooth_alpha``; each by ``layers`` steps of Z <- α Â Z + (1-α) Z_0. Every pair of
    the two grids is tried (0 = that half off, so (0, 0) is no post-processing) and the best on
    validation kept."""

    correct_alphas: tuple[float, ...] = Field(default=(0.0, 0.5, 0.8, 0.95), min_length=1)
    smooth_alphas: tuple[float, ...] = Field(default=(0.0, 0.5, 0.8, 0.95), min_length=1)
    layers: int = Field(default=30, ge=1, le=200)

    @model_validator(mode="after")
    def _alphas_in_range(self) -> CorrectSmooth:
        if not all(0 <= a < 1 for a in (*self.correct_alphas, *self.smooth_alphas)):
            raise ValueError("correct and smooth alphas must lie in [0, 1)")
        return self


class ClusterRefine(_Strict):
    """Self-training of the clustering (:mod:`dgnn.cluster_refine`): each round, the ``share`` most
    certain members of every cluster teach a linear classifier on the order-``order`` averaged
    embedding, whose argmax is the next partition; kept only where it raises the modularity."""

    rounds: int = Field(default=3, ge=1, le=10)
    share: float = Field(default=0.3, gt=0, le=1, description="share of each cluster that teaches")
    order: int = Field(default=8, ge=1, le=64, description="hops of the averaged filter over the embedding")
    steps: int = Field(default=300, ge=1, le=100_000)
    lr: float = Field(default=0.01, gt=0)
    batch_size: int = Field(default=256, gt=0, le=1 << 20)


class TrainConfig(_Strict):
    """The schedule of forward/backward training and the selection rules around it."""

    task: Task = "classify"
    modules: list[ModuleConfig] = Field(min_length=1)
    eta: float = Field(default=1.0, ge=0, description="weight of the target term η‖H_l - E_{l+1}‖²")
    bp_count: int = Field(default=1, ge=0, le=100, description="backward+forward rounds after FT_0")
    keep_own_loss: bool = Field(
        default=False,
        description="supervised modules keep their cross-entropy when a target exists (the paper drops it)",
    )
    feature_norm: FeatureNorm = "none"
    module_patience: int = Field(
        default=0, ge=0, description="evaluate every 10 steps and keep a module's best; 0 = off (paper)"
    )
    pass_patience: int = Field(default=0, ge=0, description="stop after this many passes without gain; 0 = off")
    mask_rate: float = Field(default=0.2, ge=0, lt=1, description="auto-encoder: share of entries hidden")
    edge_batch_share: float = Field(
        default=0.0, ge=0, le=1,
        description="auto-encoder: share of each batch made of the endpoints of uniformly drawn edges "
                    "(0 = the paper's uniform batches; on sparse graphs a uniform block holds few edges)")
    select_metric: SelectMetric = Field(
        default="acc", description="classify: the validation score that selects passes, candidates and "
                                   "trials (roc_auc: one-vs-rest, macro over classes)")
    class_weight: Literal["none", "balanced"] = Field(
        default="none", description="balanced: cross-entropy weights inversely proportional to the "
                                    "training class counts (skewed tasks)")
    consistency: Consistency | None = None
    label_input: LabelInput | None = None
    self_training: SelfTraining | None = None
    correct_smooth: CorrectSmooth | None = None
    cluster_refine: ClusterRefine | None = None
    kmeans_restarts: int = Field(default=10, gt=0)
    kmeans_normalise: bool = Field(
        default=False, validation_alias=AliasChoices("kmeans_normalise", "kmeans_normalize"),
        description="scale embedding rows to unit L2 norm before k-means (cosine geometry); "
                    "configs written before the spelling was unified may say kmeans_normalize"
    )

    @model_validator(mode="after")
    def _levers_fit_the_task(self) -> TrainConfig:
        levers = [name for name in ("consistency", "label_input", "self_training", "correct_smooth")
                  if getattr(self, name) is not None]
        if self.task == "cluster" and (levers or self.class_weight != "none" or self.select_metric != "acc"):
            raise ValueError(f"{', '.join(levers) or 'class_weight / select_metric'} need labels: "
                             "classify configs only")
        if self.task == "classify" and self.cluster_refine is not None:
            raise ValueError("cluster_refine refines a clustering: cluster configs only")
        return self

    @property
    def num_modules(self) -> int:
        return len(self.modules)

    @property
    def stages(self) -> int:
        """Training stages: 1, plus the self-training stages."""
        return 1 + (self.self_training.stages if self.self_training else 0)

    def levers(self) -> list[str]:
        """The accuracy levers this config turns on, by name (what every figure it made must say)."""
        named = {"consistency": self.consistency, "label_input": self.label_input,
                 "self_training": self.self_training, "correct_smooth": self.correct_smooth,
                 "cluster_refine": self.cluster_refine}
        out = [name for name, value in named.items() if value is not None]
        if any(m.filter == "bank" for m in self.modules):
            out.append("filter_bank")
        if self.class_weight != "none":
            out.append(f"class_weight={self.class_weight}")
        if self.select_metric != "acc":
            out.append(f"select={self.select_metric}")
        return out

    def describe(self) -> str:
        """The architecture in one line, e.g. ``2 modules: p0 w128 relu -> avg8(a=0.3) w64 relu; 1 BT``."""
        def one(m: ModuleConfig) -> str:
            if m.filter == "bank":
                kind = f"bank[{','.join(m.channels)}]"
            elif m.filter == "lazy":
                kind = f"lazy{m.order}(a={m.alpha:g})"
            else:
                kind = f"p{m.order}" if m.filter == "power" or m.order == 0 else f"avg{m.order}(a={m.alpha:g})"
            return f"{kind} w{m.width} {m.activation}"

        count = f"{self.num_modules} module{'s' if self.num_modules > 1 else ''}"
        levers = f"; {'+'.join(self.levers())}" if self.levers() else ""
        return f"{count}: {' -> '.join(one(m) for m in self.modules)}; {self.bp_count} BT{levers}"


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
    except FileNotFoundError:
        raise ValueError(f"config file {path} not found: give the path of a YAML run config "
                         f"(the shipped ones are in {CONFIG_DIR})") from None
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


def resolve_config(dataset: str, task: str, config=None) -> RunConfig | Portfolio:
    """A RunConfig (or Portfolio) from a path, a dict (a whole run config, just its ``train``
    part, or a portfolio), a config object, or the shipped default for ``dataset``/``task`` (None):
    the one resolution of ``dgnn train`` and the flows."""
    if config is None:
        run_config = load_config(default_config_path(dataset, task))
    elif isinstance(config, (str, Path)):
        run_config = load_config(config)
    elif isinstance(config, (RunConfig, Portfolio)):
        run_config = config
    elif isinstance(config, TrainConfig):
        run_config = RunConfig(dataset=dataset, train=config)
    elif isinstance(config, dict) and "candidates" in config:
        run_config = Portfolio.model_validate(config)
    elif isinstance(config, dict):
        run_config = RunConfig.model_validate(config if "train" in config else {"train": config})
    else:
        raise TypeError(f"config must be a path, a dict or a RunConfig, not {type(config).__name__}")
    if config_task(run_config) != task:
        where = config if isinstance(config, (str, Path)) else "the config"
        raise ValueError(f"{where} is a {config_task(run_config)!r} config but the task is {task!r}")
    return run_config
