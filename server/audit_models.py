"""The audit API's response bodies: privacy records as the coordinator holds them, what it
believes each dataset has spent, registered partner keys, and the audit log."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from sangsaeng.shared.accounting import Mechanism, epsilon

from .api_models import FromRow
from .store import PrivacyRecord, Run


class AuditRecord(FromRow):
    """One partner's report of one round: the mechanism it ran and the ε it claims."""

    round: int
    partner: str
    node_id: str
    dataset: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    epsilon: float = Field(description="claimed: this run, up to this round")
    lifetime_epsilon: float = Field(description="claimed: every run on the dataset, up to "
                                                "ledger entry `ledger_seq`")
    epsilon_cap: float
    ledger_seq: int = Field(description="the partner ledger's commit entry for this update")
    ledger_hash: str
    recorded_at: dt.datetime


class AuditRun(BaseModel):
    id: int
    flower_run_id: str | None = Field(description="the run id in partners' ledgers")
    owner: str | None
    dataset: str
    task_sha256: str
    status: str
    reason: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    records: list[AuditRecord] = Field(description="by round, then partner")

    @classmethod
    def of(cls, run: Run) -> AuditRun:
        return cls(id=run.id, flower_run_id=run.flower_run_id, owner=run.owner,
                   dataset=run.dataset, task_sha256=run.task_sha256, status=run.status,
                   reason=run.reason, started_at=run.started_at, finished_at=run.finished_at,
                   records=[AuditRecord.of(r) for r in run.privacy_reports])


class DatasetSpend(BaseModel):
    """What the coordinator knows of one partner dataset's lifetime spending."""

    partner: str
    dataset: str
    delta: float
    epsilon_cap: float
    reported_epsilon: float = Field(description="the partner's lifetime ε in its latest "
                                                "report (its whole ledger)")
    recorded_epsilon: float = Field(description="ε of every mechanism the coordinator "
                                                "recorded for it, by the partner's accountant "
                                                "(Opacus RDP), composed")
    runs: int
    rounds: int
    ledger_seq: int = Field(description="the latest ledger entry a report named")
    ledger_hash: str

    @classmethod
    def of_records(cls, records: list[PrivacyRecord]) -> list[DatasetSpend]:
        groups: dict[tuple[str, str], list[PrivacyRecord]] = {}
        for r in records:
            groups.setdefault((r.partner, r.dataset), []).append(r)
        spends = []
        for (partner, dataset), rows in sorted(groups.items()):
            latest = max(rows, key=lambda r: r.ledger_seq)
            history = [Mechanism(noise_multiplier=r.noise_multiplier, sample_rate=r.sample_rate,
                                 steps=r.steps) for r in rows]
            spends.append(cls(
                partner=partner, dataset=dataset, delta=latest.delta,
                epsilon_cap=latest.epsilon_cap, reported_epsilon=latest.lifetime_epsilon,
                recorded_epsilon=epsilon(history, latest.delta),
                runs=len({r.run_id for r in rows}), rounds=len(rows),
                ledger_seq=latest.ledger_seq, ledger_hash=latest.ledger_hash))
        return spends


class PartnerKey(FromRow):
    name: str
    public_key: str = Field(description="Ed25519, base64 of the 32 raw bytes")
    registered_at: dt.datetime


class AuditLogEntry(FromRow):
    seq: int
    time: str
    actor: str
    role: str | None
    tenant: str | None
    action: str
    outcome: str
    detail: str | None
    prev_hash: str
    hash: str = Field(description="sha256 of the canonical JSON of the other fields")
