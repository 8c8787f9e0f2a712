"""Queries of partners and the public keys their ledger exports are signed with."""

from __future__ import annotations

from sqlalchemy import select

from .tables import Partner, Sessions, now


class PartnerQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def put(self, name: str, public_key: str, replace: bool = False) -> bool:
        """Register a partner's public key; False if it has one and `replace` is not set."""
        with self.session() as s:
            row = s.get(Partner, name)
            if row is not None and not replace:
                return False
            s.merge(Partner(name=name, public_key=public_key, registered_at=now()))
            return True

    def list(self) -> list[Partner]:
        with self.session() as s:
            return list(s.scalars(select(Partner).order_by(Partner.name)))
