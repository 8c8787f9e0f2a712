"""/audit: the auditor's read-only view of the coordinator's privacy records, what it
believes each partner dataset has spent, partners' registered keys, and the audit log.
`sangsaeng audit verify` checks all of it independently."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sangsaeng.server.accounts import Role
from sangsaeng.server.db.tables import MAX_ID
from sangsaeng.shared.rest.audit import (
    LOG_PAGE,
    AuditLogEntry,
    AuditRun,
    DatasetSpend,
    PartnerKey,
)

from ..deps import StoreDep, allow, documented
from ..responses import audit_run, dataset_spends

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[allow(Role.AUDITOR)],
                   responses=documented(401, 403))


@router.get("/budgets")
def budgets(store: StoreDep) -> list[DatasetSpend]:
    """Per partner dataset: the lifetime ε the partner last reported, the ε of every
    mechanism the coordinator recorded for it, and its cap."""
    return dataset_spends(store.privacy.all())


@router.get("/runs")
def runs(store: StoreDep) -> list[AuditRun]:
    """Every run, oldest first, with each partner's mechanism (σ, q, steps, δ), claimed ε
    and ledger anchor per round."""
    return [audit_run(run) for run in store.runs.list()]


@router.get("/partners")
def partners(store: StoreDep) -> list[PartnerKey]:
    """Partners' registered Ed25519 public keys, which sign their ledger exports."""
    return [PartnerKey.model_validate(p) for p in store.partners.list()]


@router.get("/log")
def audit_log(store: StoreDep,
              after: Annotated[int, Query(ge=0, le=MAX_ID, description="entries after this "
                                          "seq")] = 0,
              limit: Annotated[int, Query(ge=1, le=LOG_PAGE)] = LOG_PAGE
              ) -> list[AuditLogEntry]:
    """The hash-chained log of every API request and operator command, oldest first."""
    return [AuditLogEntry.model_validate(e) for e in store.audit_log.entries(after, limit)]
