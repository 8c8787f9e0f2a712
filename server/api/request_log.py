"""Every API request becomes an entry of the coordinator's hash-chained audit log: who
(the token's holder, or 'anonymous' / 'invalid token'; never the token), what (method and
path), when, and the outcome (HTTP status). Liveness and readiness probes are left out;
the dashboard's sign-ins and sign-outs are in (its pages' calls to the API are API requests).

The entry is committed before the response starts, so no answered request goes unlogged;
a request that dies without an answer is logged as a 500 (or as cancelled). Requests
refused for want of a valid token are the exception: a flood of them must neither fill
the log nor queue every caller behind its appends, so in each AGGREGATE_SECONDS window the
first is logged and the rest are counted into one entry once the window has passed (by the
next such request, or by the app's background task: `Refusals.flush`, also at shutdown).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sangsaeng.server.db import Store
from sangsaeng.server.web.session import SESSION_PATHS

DETAIL_KEY = "audit_detail"  # request.state.<this>: what a route adds, e.g. the run it made
MAX_PATH = 300  # longer paths (uvicorn takes up to ~16 KB) are cut: the store's column is 500
AGGREGATE_SECONDS = 10.0


class RequestLog:
    def __init__(self, app: ASGIApp, store: Store, prefix: str, refusals: Refusals) -> None:
        self.app, self.store, self.prefix = app, store, prefix
        self.unlogged = {f"{prefix}/health", f"{prefix}/ready"}
        self.refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        session = scope.get("method") == "POST" and path in SESSION_PATHS
        if (scope["type"] != "http" or path in self.unlogged
                or not (path.startswith(self.prefix + "/") or session)):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # the routes' request.state
        logged = False

        async def audited_send(message: Message) -> None:
            nonlocal logged
            if message["type"] == "http.response.start" and not logged:
                logged = True
                await run_in_threadpool(self._record, scope, state, str(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except BaseException as err:
            if not logged:  # synchronously: a cancelled task cannot await any more
                self._record(scope, state, "500" if isinstance(err, Exception)
                             else "cancelled before a response")
            raise

    def _record(self, scope: Scope, state: dict[str, Any], outcome: str) -> None:
        account = state.get("account")
        if account is not None:
            actor, role, tenant = account.name, account.role.value, account.tenant
        else:  # not authenticated: no token, a bad one, or a request that never got that far
            presented = any(k == b"authorization" for k, _ in scope.get("headers", []))
            actor = "invalid token" if presented and outcome == "401" else "anonymous"
            role = tenant = None
            if outcome == "401":
                logged, earlier = self.refusals.count()
                _log_counted(self.store, earlier)
                if not logged:
                    return
        path = scope["path"]
        if len(path) > MAX_PATH:
            path = f"{path[:MAX_PATH]}… ({len(path)} characters)"
        self.store.audit_log.append(actor=actor, role=role, tenant=tenant,
                                    action=f"{scope['method']} {path}", outcome=outcome,
                                    detail=state.get(DETAIL_KEY))


class Refusals:
    """Counts 401s: the first of each window is logged, the others counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = -float("inf")
        self._counted = 0

    def count(self) -> tuple[bool, int]:
        """(log this one?, how many counted in a window now closed, to log first)."""
        with self._lock:
            now = time.monotonic()
            if now - self._window < AGGREGATE_SECONDS:
                self._counted += 1
                return False, 0
            earlier, self._counted, self._window = self._counted, 0, now
            return True, earlier

    def flush(self, store: Store, closing: bool = False) -> None:
        """Log the count of a window that has passed (any window, when `closing`)."""
        with self._lock:
            if not self._counted or (
                    not closing and time.monotonic() - self._window < AGGREGATE_SECONDS):
                return
            earlier, self._counted = self._counted, 0
        _log_counted(store, earlier)


def _log_counted(store: Store, counted: int) -> None:
    if counted:
        store.audit_log.append(
            actor="unauthenticated callers", role=None, tenant=None,
            action="requests without a valid token", outcome="401",
            detail=f"{counted} more refused in the {AGGREGATE_SECONDS:g} s after the last "
                   "one logged")
