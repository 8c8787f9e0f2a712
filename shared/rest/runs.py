"""Runs as the API shows them (request bodies are shared.task.TaskSpec): aggregates and
privacy parameters, never data. `from_attributes`: the server builds them from its rows."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from sangsaeng.shared.task import TaskSpec


class PartnerPrivacy(BaseModel):
    """One partner's DP-SGD mechanism in one round and its ε after it (δ as given)."""

    model_config = ConfigDict(from_attributes=True)

    partner: str
    dataset: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    evaluation_noise_multiplier: float = Field(description="the round's evaluation release")
    trained_parameters: int = Field(description="the coordinates DP-SGD trained (and noised)")
    delta: float
    epsilon: float = Field(description="this run so far, on this partner's dataset")
    lifetime_epsilon: float = Field(description="every run so far on this dataset")
    epsilon_cap: float


class RoundOut(BaseModel):
    round: int
    trained_nodes: int
    evaluated_nodes: int
    metrics: dict[str, float] = Field(description="FedAvg-weighted holdout metrics")
    partner_errors: list[str] = Field(description="refusals and errors, without data values")
    privacy: list[PartnerPrivacy]


class RunHeader(BaseModel):
    """What every view of a run starts with."""

    id: int
    flower_run_id: str | None = Field(description="the run id in partners' ledgers")
    owner: str | None
    dataset: str
    task_sha256: str
    status: str
    reason: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None


class RunSummary(RunHeader):
    rounds_planned: int
    rounds_done: int = Field(description="rounds with evaluated metrics")
    model_sha256: str | None = Field(description="set once a model can be downloaded")


class MetricChange(BaseModel):
    metric: str
    base: float
    improved: float


class Receipt(BaseModel):
    """The startup's base model against the run's model, on the same partners' holdouts:
    both DP releases, charged to the partners (their ε is in `privacy`)."""

    final_round: int = Field(description="the round whose model is `improved`")
    base_partners: int = Field(description="partners that evaluated the base model")
    final_partners: int = Field(description="partners that evaluated the final model")
    metrics: list[MetricChange]


class RunOut(RunSummary):
    rounds: list[RoundOut]
    receipt: Receipt | None = Field(default=None, description="once a run that started "
                                    "from a base model has an evaluated round")


class PartnerSpend(BaseModel):
    partner: str
    rounds_trained: int
    epsilon: float = Field(description="this run, at the partner's last report")
    lifetime_epsilon: float
    epsilon_cap: float
    delta: float


class ModelCard(BaseModel):
    """What a model is and what it cost: task, per-round metrics and ε per partner."""

    run_id: int
    dataset: str
    status: str
    reason: str | None
    task: TaskSpec
    task_sha256: str
    model_format: str = "safetensors"
    model_sha256: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    metrics: list[RoundOut]
    receipt: Receipt | None = None
    privacy: list[PartnerSpend]
    notes: list[str]
