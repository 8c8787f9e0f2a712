"""Queries of partners' privacy reports (append-only)."""

from __future__ import annotations

from sqlalchemy import select

from sangsaeng.shared.accounting import PrivacyReport

from .tables import PrivacyRecord, Sessions


class PrivacyQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def add(self, run_id: int, round_: int, reports: list[tuple[int, PrivacyReport]]) -> None:
        """Record (node id, report) pairs of one round, all or none."""
        with self.session() as s:
            s.add_all(PrivacyRecord(run_id=run_id, round=round_, node_id=str(node_id),
                                    **report.model_dump()) for node_id, report in reports)

    def all(self) -> list[PrivacyRecord]:
        """Every partner's privacy report, in the order the coordinator recorded them."""
        with self.session() as s:
            return list(s.scalars(select(PrivacyRecord).order_by(PrivacyRecord.id)))
