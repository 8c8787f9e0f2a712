"""The auditor's verification in the browser runs the auditor's own checks (the same as
`sangsaeng audit verify`). The coordinator does not import the audit role: whoever
assembles the server hands those checks in (sangsaeng/cli.py, the demo)."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

MAX_LEDGER_FILES = 64
MAX_LEDGER_BYTES = 32 * 2**20  # all uploaded exports together


class Verifier(Protocol):
    def __call__(self, records: dict[str, Any], ledgers: list[tuple[str, bytes]]
                 ) -> BaseModel:
        """Verify the coordinator's audit records (`runs`, `budgets`, `partners`, `log`, as
        the audit API serves them) and partners' signed ledger exports (file name, bytes).
        Raises ValueError for a file that is not a ledger export."""
        ...
