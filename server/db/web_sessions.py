"""Queries of the dashboard's sessions (only their secrets' hashes are stored)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from .tables import ApiToken, Sessions, WebSession, now


class WebSessionQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def start(self, token_id: int, secret_sha256: str, lifetime: dt.timedelta) -> None:
        with self.session() as s:
            s.add(WebSession(token_id=token_id, secret_sha256=secret_sha256,
                             expires_at=now() + lifetime))

    def token(self, secret_sha256: str) -> ApiToken | None:
        """The live token a live session stands for: None once the session ended or
        expired, or its token was revoked."""
        with self.session() as s:
            return s.scalar(
                select(ApiToken).join(WebSession, WebSession.token_id == ApiToken.id)
                .where(WebSession.secret_sha256 == secret_sha256,
                       WebSession.ended_at.is_(None), WebSession.expires_at > now(),
                       ApiToken.revoked_at.is_(None)))

    def end(self, secret_sha256: str) -> bool:
        with self.session() as s:
            result = s.execute(update(WebSession)
                               .where(WebSession.secret_sha256 == secret_sha256,
                                      WebSession.ended_at.is_(None))
                               .values(ended_at=now()))
            return bool(result.rowcount)  # type: ignore[attr-defined]
