"""What every dashboard page shares: who is visiting (from the session cookie), their
in-process API client, and rendering with the security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from sangsaeng.server.accounts import Account, Role, authenticate
from sangsaeng.shared.web import SECURITY_HEADERS, environment

from .api import Api, SessionEnded
from .session import csrf_for, session_token

TEMPLATES = environment(Path(__file__).parent / "templates")
STATIC_URL = "/static"


@dataclass
class Visitor:
    account: Account
    api: Api
    csrf: str

    @property
    def role(self) -> Role:
        return self.account.role


async def visitor(request: Request) -> AsyncIterator[Visitor]:
    """The signed-in account (the same lookup as the API's Gate), or sign in first."""
    token = session_token(request)
    account = (await run_in_threadpool(authenticate, request.app.state.store, token)
               if token else None)
    if token is None or account is None:
        raise SessionEnded
    api = Api(request, token)
    try:
        yield Visitor(account, api, csrf_for(token))
    finally:
        await api.close()


VisitorDep = Annotated[Visitor, Depends(visitor)]


def render(template: str, visitor: Visitor | None = None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(
        static_url=STATIC_URL, me=visitor.account if visitor else None,
        role=visitor.role.value if visitor else None,
        csrf=visitor.csrf if visitor else None, **context)
    return HTMLResponse(html, status_code, headers=SECURITY_HEADERS)
