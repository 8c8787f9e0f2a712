"""What every API request passes before any route sees it: its size, then its token.

A body is never parsed, nor even read, for a caller without a valid token: an anonymous
50 MiB upload is refused on its headers (401), malformed JSON from a stranger gets a 401
rather than a 422 that describes it. A caller with a token may send at most the size its
route accepts: a Content-Length over it is refused at once (413), and a chunked body is
counted as it arrives and refused as soon as it passes the limit, before the route starts.
The account found here is the one the routes use (deps.current_account), so the token
is looked up once, by the same rules.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sangsaeng.server.accounts import authenticate
from sangsaeng.server.db import Store
from sangsaeng.shared.models import MAX_WEIGHTS_BYTES

ACCOUNT_KEY = "account"  # request.state.<this>: the caller's Account, or None
MAX_JSON_BODY = 2 * 2**20  # a task, however many features it lists
BODY_LIMITS = {"/models": MAX_WEIGHTS_BYTES + 2**20}  # safetensors header included
PUBLIC = {"/health", "/ready"}


class Gate:
    def __init__(self, app: ASGIApp, store: Store, prefix: str) -> None:
        self.app, self.store, self.prefix = app, store, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return
        route = path.removeprefix(self.prefix)
        if route in PUBLIC:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        token = _bearer(scope)
        account = await run_in_threadpool(authenticate, self.store, token) if token else None
        state[ACCOUNT_KEY] = account
        if account is None:
            await _answer(send, 401, "a valid API token is needed (Authorization: Bearer ...)",
                          {"www-authenticate": "Bearer"})
            return
        limit = BODY_LIMITS.get(route, MAX_JSON_BODY)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, 413, f"the request body is over the limit of {limit} bytes")
            return
        body = await _read(receive, limit)
        if body is None:
            await _answer(send, 413, f"the request body is over the limit of {limit} bytes")
            return
        await self.app(scope, _replay(body, receive), send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


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
