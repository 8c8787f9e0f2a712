"""The task a startup submits: data schema, model, training and DP parameters.

A task is declarative (no code): partners run only Sangsaeng's own training code on it.
It travels to the ServerApp and every ClientApp as JSON in Flower's run config.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .accounting import MIN_DELTA
from .files import DocumentError, read_document
from .hash_chain import canonical_sha256
from .wire import RUN_CONFIG_TASK

# Bounds on everything a task may ask of a partner (and of the coordinator, which stores
# and serves it): every number finite (allow_inf_nan=False below), every size limited.
MAX_NAME = 200  # characters of a dataset, column or category name
MAX_FEATURES = 10_000
MAX_CATEGORIES = 10_000  # of one column, or classes of the target
MAX_HIDDEN_LAYERS = 16
MAX_SIGMA = 1_000.0  # noise multiplier; far past any use (ε is ~0 well before)
MAX_BATCH = 100_000  # the expected Poisson batch: rows in memory at once
MAX_NODES = 10_000

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Category = Name | Annotated[int, Field(ge=-2**63, lt=2**63)]


class TaskSpecError(ValueError):
    """A task spec that cannot be used; the message names every bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NumericFeature(_Strict):
    """A numeric column, clipped to its declared range and scaled by it (never by the
    data's); a missing or non-numeric value takes `missing` (default: `min`)."""

    kind: Literal["numeric"] = "numeric"
    name: Name
    min: float
    max: float
    missing: float | None = None

    @model_validator(mode="after")
    def _range(self) -> NumericFeature:
        if not self.max > self.min:
            raise ValueError(f"max must be greater than min ({self.min} .. {self.max})")
        if not math.isfinite(self.max - self.min):  # scaling divides by it
            raise ValueError("the range max - min must be a finite number")
        if self.missing is not None and not self.min <= self.missing <= self.max:
            raise ValueError("missing must lie in the declared range")
        return self

    @property
    def fill(self) -> float:
        return self.min if self.missing is None else self.missing


class CategoricalFeature(_Strict):
    """A categorical column, one-hot encoded over its declared categories; a missing or
    undeclared value encodes as all zeros."""

    kind: Literal["categorical"]
    name: Name
    categories: list[Category] = Field(min_length=1, max_length=MAX_CATEGORIES)

    @model_validator(mode="after")
    def _unique(self) -> CategoricalFeature:
        _require_unique([str(c) for c in self.categories], "categories")
        return self


class TextFeature(_Strict):
    """A column of free text, read through the task's pretrained encoder (its own
    tokenizer, truncated to the model's `max_tokens`); a missing cell is the empty text."""

    kind: Literal["text"]
    name: Name


def _feature_kind(value: object) -> str:
    kind = value.get("kind", "numeric") if isinstance(value, dict) else getattr(value, "kind", "")
    return str(kind)


# `kind` may be left out for numeric columns (most columns of a typical table).
Feature = Annotated[
    Annotated[NumericFeature, Tag("numeric")] | Annotated[CategoricalFeature, Tag("categorical")]
    | Annotated[TextFeature, Tag("text")],
    Discriminator(_feature_kind),
]


class TargetSpec(_Strict):
    name: Name
    classes: list[Category] = Field(min_length=2, max_length=MAX_CATEGORIES)

    @model_validator(mode="after")
    def _unique(self) -> TargetSpec:
        _require_unique([str(c) for c in self.classes], "classes")
        return self


# The pretrained encoders a text model may name (shared/encoders.py pins their files).
Encoder = Literal["all-MiniLM-L6-v2"]


class ModelSpec(_Strict):
    """A registry architecture (shared/models.py). `text-classifier` is a pretrained
    encoder with a classification head: in `head` mode the encoder is frozen and only the
    head trains; in `adapters` mode the last `adapter_layers` layers' attention query and
    value also train through FFA-LoRA (Sun et al. 2024, arXiv:2403.12313): a fixed random
    A and a trained B of rank `adapter_rank`."""

    kind: Literal["logreg", "mlp", "text-classifier"]
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default_factory=list,
                                                               max_length=MAX_HIDDEN_LAYERS)
    encoder: Encoder | None = None
    mode: Literal["head", "adapters"] = "head"
    max_tokens: int = Field(default=128, ge=8, le=512)
    adapter_layers: int = Field(default=1, ge=1, le=6)
    adapter_rank: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _hidden(self) -> ModelSpec:
        if self.kind == "mlp" and not self.hidden:
            raise ValueError("an mlp needs at least one hidden layer size in 'hidden'")
        if self.kind == "logreg" and self.hidden:
            raise ValueError("logreg takes no hidden layers")
        if self.kind == "text-classifier" and self.encoder is None:
            raise ValueError("a text-classifier names its pretrained 'encoder'")
        if self.kind != "text-classifier" and (self.encoder is not None
                                               or self.mode != "head"):
            raise ValueError(f"{self.kind} takes no encoder and no training mode")
        return self

    @property
    def text(self) -> bool:
        return self.kind == "text-classifier"


class DPSpec(_Strict):
    """DP-SGD parameters: give the noise multiplier, or a target epsilon for the whole run."""

    max_grad_norm: float = Field(gt=0, le=1e6)
    delta: float = Field(ge=MIN_DELTA, lt=1)  # the accountant's floor (accounting.py)
    noise_multiplier: float | None = Field(default=None, gt=0, le=MAX_SIGMA)
    target_epsilon: float | None = Field(default=None, gt=0, le=1_000)
    # Each round's holdout evaluation is a Gaussian release with this noise multiplier
    # (client/evaluation.py), reserved with the round's training and counted in its ε.
    evaluation_noise_multiplier: float = Field(default=10.0, gt=0, le=MAX_SIGMA)

    @model_validator(mode="after")
    def _one_of(self) -> DPSpec:
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("give exactly one of noise_multiplier and target_epsilon")
        return self


class ScheduleSpec(_Strict):
    """The local learning rate over the run: `constant`, or `cosine` from learning_rate
    down to `final` × learning_rate at the run's last local step (the round's number and
    the step within it say where a step is; neither depends on data)."""

    kind: Literal["constant", "cosine"] = "constant"
    final: float = Field(default=0.1, ge=0, le=1)


class ServerOptimizerSpec(_Strict):
    """How the coordinator turns the partners' averaged model into the next global model.
    It sees only the average of DP releases, so whatever it does is post-processing: free in
    ε. With Δ the average minus the current global model: `sgd` keeps m = momentum·m + Δ
    and moves by learning_rate·m (learning_rate 1 and momentum 0 is FedAvg itself; FedAvgM,
    Hsu et al. 2019); `adam` is FedAdam (Reddi et al. 2021, arXiv:2003.00295): Adam's bias-
    corrected moments of Δ, with `epsilon` as its τ."""

    kind: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = Field(default=1.0, gt=0, le=10)
    momentum: float = Field(default=0.0, ge=0, lt=1)  # adam's β1
    beta2: float = Field(default=0.99, ge=0, lt=1)  # adam only
    epsilon: float = Field(default=1e-3, gt=0, le=1)  # adam only

    @property
    def is_fedavg(self) -> bool:
        """The next global model is the partners' average itself."""
        return self.kind == "sgd" and self.learning_rate == 1.0 and self.momentum == 0.0


class TaskSpec(_Strict):
    dataset: Name
    features: list[Feature] = Field(min_length=1, max_length=MAX_FEATURES)
    target: TargetSpec
    model: ModelSpec
    rounds: int = Field(ge=1, le=1000)
    # Either may be left out with a target epsilon: each partner then plans it from its
    # budget (client/dp_sgd.py, plan).
    local_epochs: int | None = Field(default=None, ge=1, le=100)
    batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH,
                                   description="expected batch size of Poisson sampling")
    learning_rate: float = Field(gt=0, le=10)
    learning_rate_schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    # One weight per class, each in (0, 1]: a sample's clipped gradient is scaled by its
    # class's, so it still moves an update by at most max_grad_norm (client/ghost_step.py).
    class_weights: list[Annotated[float, Field(gt=0, le=1)]] | None = None
    dp: DPSpec
    server_optimizer: ServerOptimizerSpec = Field(default_factory=ServerOptimizerSpec)
    min_nodes: int = Field(ge=1, le=MAX_NODES)
    round_timeout: float = Field(gt=0, le=86400, description="seconds")
    seed: int = Field(default=0, ge=0, lt=2**32,
                      description="initial weights (and the adapters' fixed A matrices)")
    # The startup's uploaded weights the run starts from (their sha256, as the API returns
    # it): the model's trained parameters; without one, a seeded initialisation.
    base_model: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _planned(self) -> TaskSpec:
        planned = [name for name in ("batch_size", "local_epochs")
                   if getattr(self, name) is None]
        if planned and self.dp.target_epsilon is None:
            raise ValueError(f"{' and '.join(planned)} can be planned only from a budget: "
                             "give them, or dp.target_epsilon instead of "
                             "dp.noise_multiplier")
        return self

    @model_validator(mode="after")
    def _columns(self) -> TaskSpec:
        names = [f.name for f in self.features]
        _require_unique(names, "feature names")
        if self.target.name in names:
            raise ValueError(f"target column '{self.target.name}' is also listed as a feature")
        text = [f.name for f in self.features if isinstance(f, TextFeature)]
        if text and not self.model.text:
            raise ValueError(f"text column '{text[0]}' needs a text-classifier model")
        if self.model.text and not text:
            raise ValueError("a text-classifier needs a text column among the features")
        if self.model.mode == "adapters" and len(text) != 1:
            raise ValueError("adapters mode trains on exactly one text column")
        return self

    @field_validator("class_weights")
    @classmethod
    def _one_weight_per_class(cls, weights: list[float] | None, info: ValidationInfo
                              ) -> list[float] | None:
        target = info.data.get("target")  # absent if the target itself is invalid
        if weights is not None and target is not None and len(weights) != len(target.classes):
            raise ValueError(f"{len(weights)} weights for the target's {len(target.classes)} "
                             "classes: give one per class")
        return weights

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.features] + [self.target.name]

    def to_json(self) -> str:
        return self.model_dump_json()

    def sha256(self) -> str:
        return canonical_sha256(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            raise TaskSpecError(describe(err)) from None

    @classmethod
    def from_dict(cls, data: object) -> TaskSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise TaskSpecError(describe(err)) from None

    @classmethod
    def from_run_config(cls, run_config: dict[str, object]) -> TaskSpec:
        text = run_config.get(RUN_CONFIG_TASK)
        if not isinstance(text, str) or not text:
            raise TaskSpecError(f"run config has no '{RUN_CONFIG_TASK}' (a TaskSpec as JSON)")
        return cls.from_json(text)


def load_task(path: str | Path) -> TaskSpec:
    """Read a task from a .toml or .json file."""
    path = Path(path)
    try:
        return TaskSpec.from_dict(read_document(path))
    except DocumentError as err:
        raise TaskSpecError(err.about(path, "task")) from None


def describe(err: ValidationError, what: str = "task spec") -> str:
    """One line per bad field: 'field.path: reason' (never echoes the input value)."""
    errors = err.errors()
    lines = [f"{'.'.join(str(p) for p in e['loc']) or '(task)'}: {e['msg']}" for e in errors[:10]]
    more = f"; and {len(errors) - 10} more" if len(errors) > 10 else ""
    return f"invalid {what}: " + "; ".join(lines) + more


def _require_unique(values: list[str], what: str) -> None:
    dupes = sorted(v for v, n in Counter(values).items() if n > 1)
    if dupes:
        raise ValueError(f"duplicate {what}: {', '.join(dupes)}")
