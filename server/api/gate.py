"""What every API request passes before any route sees it: its size, then its token.

A body is never parsed, nor even read, for a caller without a valid token: an anonymous
50 MiB upload is refused on its headers (401), malformed JSON from a stranger gets a 401
rather than a 422 that describes it. A caller with a token may send at most the size its
route accepts, and a large body only to a route its role may use (an auditor's 64 MiB
upload is refused before it is read): a Content-Length over the limit is refused at once
(413), a chunked body is counted as it arrives and refused as soon as it passes it. All
bodies held at once stay within IN_FLIGHT_BYTES (503 beyond), each must arrive within
BODY_SECONDS (408), and a body cut off by a disconnect never reaches its route. The
account found here is the one the routes use (deps.current_account), so the token is
looked up once, by the same rules.

The dashboard's forms (any other method outside the API) pass the same limits: a body is
read only for a signed-in visitor (the sign-in form excepted, whose limit is small), and a
large one only for the role whose page takes it.

The dashboard's session cookie (server/web/session.py) holds a token too. The API takes it
only for GET and HEAD, which change nothing: the browser follows a run's events and downloads
a model with it. Anything that changes state needs the bearer header (the dashboard's
forms, checked for CSRF, call the API in process with it).
"""

from __future__ import annotations

import asyncio
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sangsaeng.server.accounts import Role, authenticate
from sangsaeng.server.db import Store
from sangsaeng.server.web.session import SESSION_COOKIE
from sangsaeng.server.web.verification import MAX_LEDGER_BYTES
from sangsaeng.shared.models import MAX_WEIGHTS_BYTES

ACCOUNT_KEY = "account"  # request.state.<this>: the caller's Account, or None
MAX_JSON_BODY = 2 * 2**20  # a task, however many features it lists
# Routes taking large bodies: the limit (safetensors header included), and who may send it.
LARGE_BODIES = {("POST", "/models"): (MAX_WEIGHTS_BYTES + 2**20, {Role.STARTUP})}
IN_FLIGHT_BYTES = 256 * 2**20  # bodies held at once over every request
BODY_SECONDS = 120.0
PUBLIC = {"/health", "/ready"}
# The dashboard's forms (outside the API): a few fields each, but for the uploads below.
SIGN_IN = "/sign-in"
MAX_FORM_BODY = 64 * 2**10
FORM_BODIES = {"/runs/new": (MAX_JSON_BODY + MAX_FORM_BODY, {Role.STARTUP}),
               "/operator/datasets": (MAX_JSON_BODY + MAX_FORM_BODY, {Role.ADMIN}),
               "/audit/verify": (MAX_LEDGER_BYTES + MAX_FORM_BODY, {Role.AUDITOR})}


class Gate:
    def __init__(self, app: ASGIApp, store: Store, prefix: str) -> None:
        self.app, self.store, self.prefix = app, store, prefix
        self.in_flight = 0  # bytes of bodies held now (one event loop: no lock needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif path.startswith(self.prefix + "/"):
            await self._api(scope, receive, send, path.removeprefix(self.prefix))
        elif scope["method"] not in ("GET", "HEAD"):
            await self._form(scope, receive, send, path)
        else:
            await self.app(scope, receive, send)  # pages: the dashboard signs them in

    async def _api(self, scope: Scope, receive: Receive, send: Send, route: str) -> None:
        if route in PUBLIC:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        token = _bearer(scope) or _session_cookie(scope)
        account = await run_in_threadpool(authenticate, self.store, token) if token else None
        state[ACCOUNT_KEY] = account
        if account is None:
            await _answer(send, 401, "a valid API token is needed (Authorization: Bearer ...)",
                          {"www-authenticate": "Bearer"})
            return
        limit, roles = LARGE_BODIES.get((scope["method"], route), (MAX_JSON_BODY, None))
        if roles is not None and account.role not in roles:
            await _answer(send, 403, f"the {account.role} role may not do this")
            return
        await self._pass(scope, receive, send, limit)

    async def _form(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """A dashboard form: only a signed-in visitor's body is read (the sign-in form's is
        small), and only a role whose page it is may send a large one."""
        limit, roles = FORM_BODIES.get(path, (MAX_FORM_BODY, None))
        if path != SIGN_IN:
            token = _session_cookie(scope, any_method=True)
            account = (await run_in_threadpool(authenticate, self.store, token)
                       if token else None)
            if account is None:
                await send({"type": "http.response.start", "status": 303, "headers": [
                    (b"location", b"/sign-in?ended=1"), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            if roles is not None and account.role not in roles:
                await _answer(send, 403, f"the {account.role} role may not do this")
                return
            scope.setdefault("state", {})[ACCOUNT_KEY] = account  # for the audit log
        await self._pass(scope, receive, send, limit)

    async def _pass(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """The request with its whole body, read within the limits; or the refusal."""
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, 413, f"the request body is over the limit of {limit} bytes")
            return
        held = [0]
        try:
            body = await asyncio.wait_for(self._read(receive, limit, held), BODY_SECONDS)
        except TimeoutError:
            body = _SLOW
        finally:
            self.in_flight -= held[0]
        if body is _DISCONNECTED:
            return  # nobody to answer, and a cut-off body never reaches its route
        if isinstance(body, str):
            await _answer(send, *_REFUSALS[body](limit))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive, limit: int, held: list[int]) -> bytes | str:
        """The whole body; or why not: over `limit`, over the budget of bytes in flight,
        or cut off."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _DISCONNECTED
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _TOO_LARGE
            if self.in_flight + len(chunk) > IN_FLIGHT_BYTES:
                return _BUSY
            self.in_flight += len(chunk)
            held[0] += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _session_cookie(scope: Scope, any_method: bool = False) -> str | None:
    """The dashboard's session: for the API, on reads only (see above)."""
    if not any_method and scope["method"] not in ("GET", "HEAD"):
        return None
    headers = dict(scope.get("headers", []))
    # SameSite=Strict lets a sibling subdomain's page send it: the browser says where a
    # request comes from (Sec-Fetch-Site), and only this origin's pages may use it
    if headers.get(b"sec-fetch-site", b"same-origin") != b"same-origin":
        return None
    cookie = headers.get(b"cookie")
    if cookie is None:
        return None
    return cookie_parser(cookie.decode("latin-1")).get(SESSION_COOKIE) or None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


_TOO_LARGE, _BUSY, _SLOW, _DISCONNECTED = "too large", "busy", "slow", "disconnected"
_REFUSALS = {
    _TOO_LARGE: lambda limit: (413, f"the request body is over the limit of {limit} bytes"),
    _BUSY: lambda _: (503, "too many large requests at once; try again shortly"),
    _SLOW: lambda _: (408, f"the request body did not arrive within {BODY_SECONDS:g} s"),
}


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then whatever comes next (a disconnect, for streaming responses)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replayed


async def _answer(send: Send, status: int, detail: str,
                  headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in (headers or {}).items())]})
    await send({"type": "http.response.body", "body": body})
