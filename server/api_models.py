"""The API's response bodies (request bodies are shared.task.TaskSpec). Built from the
store's rows; they carry aggregates and privacy parameters, never data."""

from __future__ import annotations

import datetime as dt
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from sangsaeng.shared.task import TaskSpec

from .store import PrivacyRecord, RoundResult, Run


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    store: str
    superlink: str


class Me(BaseModel):
    name: str
    role: str
    tenant: str | None


class FromRow(BaseModel):
    """A body that is a store row's columns as they are: `Model.of(row)`."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, row: object) -> Self:
        return cls.model_validate(row)


class PartnerPrivacy(FromRow):
    """One partner's DP-SGD mechanism in one round and its ε after it (δ as given)."""

    partner: str
    dataset: str
    noise_multiplier: float
    sample_rate: float
    steps: int
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

    @classmethod
    def of(cls, row: RoundResult, run: Run) -> RoundOut:
        return cls(round=row.round, trained_nodes=row.trained_nodes,
                   evaluated_nodes=row.evaluated_nodes, metrics=row.metrics,
                   partner_errors=row.partner_errors,
                   privacy=[PartnerPrivacy.of(r) for r in run.privacy_reports
                            if r.round == row.round])


class RunSummary(BaseModel):
    id: int
    flower_run_id: str | None
    owner: str | None
    dataset: str
    task_sha256: str
    status: str
    reason: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    rounds_planned: int
    rounds_done: int = Field(description="rounds with evaluated metrics")
    model_sha256: str | None = Field(description="set once a model can be downloaded")

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        return cls.model_validate(_summary_fields(run))


class RunOut(RunSummary):
    rounds: list[RoundOut]

    @classmethod
    def of(cls, run: Run) -> RunOut:
        return cls.model_validate({**_summary_fields(run),
                                   "rounds": [RoundOut.of(r, run) for r in run.rounds]})


def _summary_fields(run: Run) -> dict[str, object]:
    return dict(id=run.id, flower_run_id=run.flower_run_id, owner=run.owner,
                dataset=run.dataset, task_sha256=run.task_sha256, status=run.status,
                reason=run.reason, started_at=run.started_at, finished_at=run.finished_at,
                rounds_planned=TaskSpec.from_json(run.task_json).rounds,
                rounds_done=sum(1 for r in run.rounds if r.evaluated_nodes),
                model_sha256=run.model_sha256)


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
    privacy: list[PartnerSpend]
    notes: list[str]

    @classmethod
    def of(cls, run: Run) -> ModelCard:
        last: dict[str, PrivacyRecord] = {}
        rounds: dict[str, int] = {}
        for r in run.privacy_reports:  # ordered by round
            last[r.partner] = r
            rounds[r.partner] = rounds.get(r.partner, 0) + 1
        return cls(
            run_id=run.id, dataset=run.dataset, status=run.status, reason=run.reason,
            task=TaskSpec.from_json(run.task_json), task_sha256=run.task_sha256,
            model_sha256=run.model_sha256, started_at=run.started_at,
            finished_at=run.finished_at, metrics=[RoundOut.of(r, run) for r in run.rounds],
            privacy=[PartnerSpend(partner=p, rounds_trained=rounds[p], epsilon=r.epsilon,
                                  lifetime_epsilon=r.lifetime_epsilon,
                                  epsilon_cap=r.epsilon_cap, delta=r.delta)
                     for p, r in sorted(last.items())],
            notes=[
                "Trained by federated averaging of partners' DP-SGD updates (Poisson "
                "sampling, per-sample clipping, Gaussian noise, as Opacus' DPOptimizer); no "
                "row left any partner.",
                "Metrics are partners' holdout aggregates, weighted by rounded counts.",
                "ε is (ε, δ)-DP per partner dataset from Opacus' RDP accountant over every "
                "step; lifetime ε covers all runs on that dataset.",
            ],
        )
