"""Queries of startups' uploaded base models (each startup sees only its own)."""

from __future__ import annotations

from sqlalchemy import select

from .tables import BaseModelRecord, Sessions


class BaseModelQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def add(self, owner: str | None, sha256: str, weights: bytes,
            tensors: list[dict[str, object]]) -> BaseModelRecord:
        """Store the weights, or return the record `owner` already has of them."""
        with self.session() as s:
            known = s.scalar(select(BaseModelRecord).filter_by(owner=owner, sha256=sha256))
            if known is not None:
                return known
            record = BaseModelRecord(owner=owner, sha256=sha256, size=len(weights),
                                     tensors=tensors, weights=weights)
            s.add(record)
            s.flush()
            return record

    def find(self, owner: str | None, sha256: str) -> BaseModelRecord | None:
        """`owner`'s record of these weights, without them."""
        with self.session() as s:
            return s.scalar(select(BaseModelRecord).filter_by(owner=owner, sha256=sha256))

    def weights(self, owner: str | None, sha256: str) -> bytes | None:
        with self.session() as s:
            return s.scalar(select(BaseModelRecord.weights).filter_by(owner=owner,
                                                                      sha256=sha256))

    def list(self, owner: str | None) -> list[BaseModelRecord]:
        with self.session() as s:
            return list(s.scalars(select(BaseModelRecord).filter_by(owner=owner)
                                  .order_by(BaseModelRecord.id)))
