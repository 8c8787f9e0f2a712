"""What the coordinator's audit API serves, fetched in one go for verifying and reporting."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from sangsaeng.api_client import SangsaengApi
from sangsaeng.server.audit_models import AuditLogEntry, AuditRun, DatasetSpend, PartnerKey


class AuditData(BaseModel):
    api_url: str
    fetched_at: str
    runs: list[AuditRun]
    budgets: list[DatasetSpend]
    partners: list[PartnerKey]
    log: list[AuditLogEntry]


def fetch(api: SangsaengApi, api_url: str) -> AuditData:
    return AuditData(api_url=api_url, fetched_at=dt.datetime.now(dt.UTC).isoformat(),
                     runs=api.audit_runs(), budgets=api.audit_budgets(),
                     partners=api.audit_partners(), log=api.audit_log())
