"""Signing in to the dashboard with an API token, and the checks every form passes.

The session is the token itself, in a cookie the page's scripts cannot read (HttpOnly),
sent over TLS only (Secure, `__Host-`), and never by another site (SameSite=Strict). The
API authenticates it on every request exactly as it does a bearer token, so revoking the
token ends the session at the next page. It never appears in a URL: the sign-in form posts it.

Every state-changing form carries a CSRF token derived from the session (an HMAC keyed
by the API token: only its holder can compute it) and is refused from another origin.
The sign-in form, which has no session yet, uses a random double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

SESSION_COOKIE = "__Host-sangsaeng-session"
SIGN_IN_COOKIE = "__Host-sangsaeng-sign-in"
SESSION_SECONDS = 12 * 3600  # the browser forgets it after a working day
CSRF_FIELD = "csrf"
SESSION_PATHS = {"/sign-in", "/sign-out"}  # in the audit log, as API requests are


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def start_session(response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, path="/",
                        secure=True, httponly=True, samesite="strict")
    response.delete_cookie(SIGN_IN_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"sangsaeng dashboard csrf v1", hashlib.sha256).hexdigest()


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
