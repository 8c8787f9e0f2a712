"""Queries of API tokens (only their hashes are stored)."""

from __future__ import annotations

from sqlalchemy import select, update

from .tables import ApiToken, Sessions, now


class TokenQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def add(self, name: str, role: str, tenant: str | None, token_sha256: str) -> int:
        with self.session() as s:
            token = ApiToken(name=name, role=role, tenant=tenant, token_sha256=token_sha256)
            s.add(token)
            s.flush()
            return token.id

    def revoke(self, token_id: int) -> bool:
        with self.session() as s:
            result = s.execute(update(ApiToken).where(ApiToken.id == token_id,
                                                      ApiToken.revoked_at.is_(None))
                               .values(revoked_at=now()))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def get(self, token_id: int) -> ApiToken | None:
        with self.session() as s:
            return s.get(ApiToken, token_id)

    def by_sha256(self, token_sha256: str) -> ApiToken | None:
        with self.session() as s:
            return s.scalar(select(ApiToken).filter_by(token_sha256=token_sha256))

    def list(self) -> list[ApiToken]:
        with self.session() as s:
            return list(s.scalars(select(ApiToken).order_by(ApiToken.id)))
