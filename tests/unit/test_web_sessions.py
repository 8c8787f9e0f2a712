"""Dashboard sessions: a secret that stands for an API token until it is ended, expires
or the token is revoked; only its hash is stored."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from sangsaeng.server.accounts import (
    Role,
    authenticate,
    create_token,
    end_session,
    start_session,
    token_sha256,
)
from sangsaeng.server.db import Store


def _signed_in(tmp_path: Path) -> tuple[Store, str, str]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    token = create_token(store, "acme-ml", Role.STARTUP, "acme")
    account = authenticate(store, token)
    assert account is not None
    return store, token, start_session(store, account)


def test_a_session_stands_for_its_token_and_only_its_hash_is_kept(tmp_path: Path) -> None:
    store, token, secret = _signed_in(tmp_path)
    assert secret.startswith("sgw_") and secret != token
    assert authenticate(store, secret) == authenticate(store, token)
    with store.session() as s:
        stored = s.execute(text("SELECT secret_sha256 FROM web_sessions")).scalars().all()
    assert stored == [token_sha256(secret)]


def test_a_session_ends_at_sign_out_expiry_or_revocation(tmp_path: Path) -> None:
    store, token, secret = _signed_in(tmp_path)
    end_session(store, secret)
    assert authenticate(store, secret) is None and authenticate(store, token) is not None

    account = authenticate(store, token)
    assert account is not None
    expired = start_session(store, account)
    with store.session() as s:
        s.execute(text("UPDATE web_sessions SET expires_at = '2000-01-01 00:00:00+00:00' "
                       "WHERE secret_sha256 = :h"), {"h": token_sha256(expired)})
    assert authenticate(store, expired) is None

    live = start_session(store, account)
    assert authenticate(store, live) is not None
    store.tokens.revoke(account.token_id)
    assert authenticate(store, live) is None
