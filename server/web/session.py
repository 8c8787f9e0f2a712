"""The dashboard's session cookie, and the checks every form passes.

Signing in with an API token (posted by the sign-in form: never in a URL) starts a server-
side session (server/accounts.py): the browser keeps only its random secret, in a cookie
the page's scripts cannot read (HttpOnly), sent over TLS only (Secure, `__Host-`) and never
by another site (SameSite=Strict). The API authenticates the secret as the token it
stands for until sign-out, expiry (12 hours) or the token's revocation, whichever is first.

Every state-changing form carries a CSRF value derived from the session (an HMAC keyed by
its secret: only its holder can compute it) and is refused from another origin. The
sign-in form, which has no session yet, uses a random double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

from sangsaeng.server.accounts import SESSION_LIFETIME

SESSION_COOKIE = "__Host-sangsaeng-session"
SIGN_IN_COOKIE = "__Host-sangsaeng-sign-in"
CSRF_FIELD = "csrf"
SESSION_PATHS = {"/sign-in", "/sign-out"}  # in the audit log, as API requests are


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def keep_session(response: Response, secret: str) -> None:
    response.set_cookie(SESSION_COOKIE, secret,
                        max_age=int(SESSION_LIFETIME.total_seconds()), path="/",
                        secure=True, httponly=True, samesite="strict")
    response.delete_cookie(SIGN_IN_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")


def forget_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"sangsaeng dashboard csrf v1", hashlib.sha256).hexdigest()


def sign_in_nonce(request: Request, response: Response) -> str:
    """The sign-in form's CSRF value: the cookie's, or a new one set on `response`."""
    nonce = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(24)
    response.set_cookie(SIGN_IN_COOKIE, nonce, max_age=3600, path="/", secure=True,
                        httponly=True, samesite="strict")
    return nonce


class FormRefused(Exception):
    """A form from another site, or without its CSRF value: changes nothing (403)."""


def check_form(request: Request, sent: object, expected: str | None) -> None:
    """Refuse a form from another origin, or without the CSRF value its session expects."""
    origin = request.headers.get("origin")
    if origin is not None and not _same_origin(origin, request):
        raise FormRefused("This form came from another site: nothing was changed.")
    if (expected is None or not isinstance(sent, str)
            or not hmac.compare_digest(sent.encode(), expected.encode())):
        raise FormRefused("This form has expired or is not ours: nothing was changed. "
                          "Reload the page and try again.")


def _same_origin(origin: str, request: Request) -> bool:
    """The coordinator serves TLS only (the scheme its listener reports may be the inner
    one): the origin must be https and name the host the request was sent to."""
    parts = urlsplit(origin)
    return parts.scheme == "https" and parts.netloc == request.headers.get("host")
