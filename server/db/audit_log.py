"""Queries of the coordinator's hash-chained audit log (append-only)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from sangsaeng.shared.hash_chain import GENESIS, record_hash

from .tables import AuditEntry, Sessions, now

APPEND_ATTEMPTS = 50


class AuditLogQueries:
    def __init__(self, session: Sessions, lock: threading.Lock) -> None:
        self.session = session
        self._lock = lock  # one appender at a time in this process

    def append(self, *, actor: str, role: str | None, tenant: str | None, action: str,
               outcome: str, detail: str | None = None) -> AuditEntry:
        """Append an entry. Two writers (the API and an operator's CLI) may race for the
        next seq: the loser's insert fails on the primary key (or on SQLite's lock) and it
        tries again on the new head."""
        attempt = 0
        while True:
            try:
                with self._lock, self.session() as s:
                    last = s.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
                    entry = AuditEntry(seq=last.seq + 1 if last else 1, time=now().isoformat(),
                                       actor=actor, role=role, tenant=tenant, action=action,
                                       outcome=outcome, detail=detail,
                                       prev_hash=last.hash if last else GENESIS)
                    entry.hash = record_hash(entry.chained_fields())
                    s.add(entry)
                return entry
            except (IntegrityError, OperationalError):
                attempt += 1
                if attempt == APPEND_ATTEMPTS:
                    raise
                time.sleep(0.01 * attempt)

    def entries(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Entries with seq > `after`, oldest first, at most `limit`."""
        with self.session() as s:
            return list(s.scalars(select(AuditEntry).where(AuditEntry.seq > after)
                                  .order_by(AuditEntry.seq).limit(limit)))
