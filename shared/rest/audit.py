"""The audit API's bodies: privacy records as the coordinator holds them, what it believes
each dataset has spent, registered partner keys, and the audit log."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from .runs import PartnerPrivacy, RunHeader

LOG_PAGE = 1000  # the most audit log entries one request gets


class AuditRecord(PartnerPrivacy):
    """One partner's report of one round: the mechanism it ran and the ε it claims."""

    round: int
    node_id: str
    epsilon: float = Field(description="claimed: this run, up to this round")
    lifetime_epsilon: float = Field(description="claimed: every run on the dataset, up to "
                                                "ledger entry `ledger_seq`")
    ledger_seq: int = Field(description="the partner ledger's commit entry for this update")
    ledger_hash: str
    recorded_at: dt.datetime


class AuditRun(RunHeader):
    records: list[AuditRecord] = Field(description="by round, then partner")


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


class PartnerKey(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    public_key: str = Field(description="Ed25519, base64 of the 32 raw bytes")
    registered_at: dt.datetime


class AuditLogEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
