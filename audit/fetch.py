"""The auditor's client of the coordinator's audit API, and what it serves, fetched in
one go for verifying and reporting."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from sangsaeng.shared.http import ApiClient
from sangsaeng.shared.rest.audit import (
    LOG_PAGE,
    AuditLogEntry,
    AuditRun,
    DatasetSpend,
    PartnerKey,
)


class AuditApi(ApiClient):
    def runs(self) -> list[AuditRun]:
        return [AuditRun.model_validate(r) for r in self._call("GET", "/audit/runs")]

    def budgets(self) -> list[DatasetSpend]:
        return [DatasetSpend.model_validate(b) for b in self._call("GET", "/audit/budgets")]

    def partners(self) -> list[PartnerKey]:
        return [PartnerKey.model_validate(p) for p in self._call("GET", "/audit/partners")]

    def log(self, page_size: int = LOG_PAGE) -> list[AuditLogEntry]:
        """The whole audit log, page by page, up to a page that is not full (each request
        adds an entry of its own, so "until empty" would never end)."""
        entries: list[AuditLogEntry] = []
        while True:
            after = entries[-1].seq if entries else 0
            page = self._call("GET", "/audit/log", params={"after": after, "limit": page_size})
            entries += [AuditLogEntry.model_validate(e) for e in page]
            if len(page) < page_size:
                return entries


class AuditData(BaseModel):
    api_url: str
    fetched_at: str
    runs: list[AuditRun]
    budgets: list[DatasetSpend]
    partners: list[PartnerKey]
    log: list[AuditLogEntry]


def fetch(api: AuditApi) -> AuditData:
    return AuditData(api_url=api.url, fetched_at=dt.datetime.now(dt.UTC).isoformat(),
                     runs=api.runs(), budgets=api.budgets(), partners=api.partners(),
                     log=api.log())
