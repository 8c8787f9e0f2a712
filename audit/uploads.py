"""The auditor's checks over records and exports handed over as they are (the dashboard's
verification page): the same `verify` as `sangsaeng audit verify`, without fetching."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ValidationError

from sangsaeng.shared.ledger_format import SignedLedgerExport

from .fetch import AuditData
from .verify import BadLedgerFile, LoadedLedger, Verification, verify


def verify_records(records: dict[str, Any], ledgers: list[tuple[str, bytes]]) -> Verification:
    """`records`: the audit API's runs, budgets, partners and log; `ledgers`: (file name,
    content) of partners' signed ledger exports. Raises BadLedgerFile (a ValueError) for a
    file that is not one, naming the file only."""
    loaded = []
    for name, content in ledgers:
        try:
            loaded.append(LoadedLedger(name, SignedLedgerExport.model_validate_json(content)))
        except ValidationError:
            raise BadLedgerFile(f"{name}: not a signed ledger export (make one with "
                                "`sangsaeng client ledger export`)") from None
    data = AuditData(api_url="the coordinator (dashboard)",
                     fetched_at=dt.datetime.now(dt.UTC).isoformat(), **records)
    return verify(data, loaded)
