"""API accounts: bearer tokens with a role, and a tenant for startups.

- admin: the operator; sees every run (never model weights) and may stop any run.
- startup: a tenant; starts, sees, stops and downloads only its own runs.
- auditor: reads every run's metrics and privacy records; never model weights.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from .db import Store

TOKEN_PREFIX = "sgs_"
SESSION_PREFIX = "sgw_"  # a dashboard session's secret (server/web/session.py)
SESSION_LIFETIME = dt.timedelta(hours=12)


class Role(StrEnum):
    ADMIN = "admin"
    STARTUP = "startup"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Account:
    token_id: int
    name: str
    role: Role
    tenant: str | None
    # a dashboard session's secret's sha256, when that is what authenticated: the same
    # account as its token's, which a long request (an event stream) checks is still live
    session: str | None = field(default=None, compare=False)

    def still_live(self, store: Store) -> bool:
        """Whether what authenticated this account still does: its token is not revoked,
        and its session (if any) has not ended or expired."""
        if self.session is not None:
            return store.web_sessions.token(self.session) is not None
        token = store.tokens.get(self.token_id)
        return token is not None and token.revoked_at is None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str, role: Role, tenant: str | None = None) -> str:
    """A new token (shown once; only its hash is stored). Startups need a tenant, the
    other roles have none."""
    if (role == Role.STARTUP) != bool(tenant):
        raise ValueError("a startup token needs a tenant; admin and auditor tokens take none")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    store.tokens.add(name, role.value, tenant, token_sha256(token))
    return token


def authenticate(store: Store, token: str) -> Account | None:
    """The account of a live token, or of the token a live dashboard session stands for;
    None for an unknown or revoked token, or a session that ended or expired."""
    session = token_sha256(token) if token.startswith(SESSION_PREFIX) else None
    if session is not None:
        row = store.web_sessions.token(session)
    else:
        row = store.tokens.by_sha256(token_sha256(token))
    if row is None or row.revoked_at is not None:
        return None
    return Account(row.id, row.name, Role(row.role), row.tenant, session)


def start_session(store: Store, account: Account) -> str:
    """A dashboard session for a signed-in account: a new secret (only its hash is kept)
    that authenticates as the account's token for SESSION_LIFETIME at most."""
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    store.web_sessions.start(account.token_id, token_sha256(secret), SESSION_LIFETIME)
    return secret


def end_session(store: Store, secret: str) -> None:
    if secret.startswith(SESSION_PREFIX):
        store.web_sessions.end(token_sha256(secret))
