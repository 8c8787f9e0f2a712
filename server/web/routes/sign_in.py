"""Signing in with an API token, and out; `/` sends each role to its home page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from sangsaeng.server.accounts import (
    SESSION_PREFIX,
    Role,
    authenticate,
    end_session,
    start_session,
)
from sangsaeng.shared.web import SECURITY_HEADERS

from ..pages import VisitorDep, render
from ..session import (
    CSRF_FIELD,
    SIGN_IN_COOKIE,
    check_form,
    forget_session,
    keep_session,
    session_token,
    sign_in_nonce,
)

router = APIRouter()
HOME = {Role.STARTUP: "/runs", Role.AUDITOR: "/audit", Role.ADMIN: "/operator"}


@router.get("/")
def home(visitor: VisitorDep) -> RedirectResponse:
    return RedirectResponse(HOME[visitor.role], 303, headers=SECURITY_HEADERS)


@router.get("/sign-in")
def sign_in_page(request: Request, ended: bool = False, next: str = "/") -> HTMLResponse:
    flashes = [("error", "Your session has ended (signed out, or the token was revoked). "
                         "Sign in again.")] if ended else []
    return _form(request, flashes, _local(next))


@router.post("/sign-in")
async def sign_in(request: Request, token: Annotated[str, Form(max_length=200)] = "",
                  csrf: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "",
                  next: Annotated[str, Form(max_length=300)] = "/") -> HTMLResponse:
    check_form(request, csrf, request.cookies.get(SIGN_IN_COOKIE))
    token = token.strip()
    # an API token only: a session's secret may not start another (and outlive itself)
    account = (await run_in_threadpool(authenticate, request.app.state.store, token)
               if token and not token.startswith(SESSION_PREFIX) else None)
    if account is None:  # the same answer for unknown and revoked tokens
        return _form(request, [("error", "That is not a valid API token.")], _local(next),
                     401)
    request.state.account = account  # the audit log's actor (server/api/request_log.py)
    response = RedirectResponse(_local(next) if next != "/" else HOME[account.role], 303,
                                headers=SECURITY_HEADERS)
    keep_session(response, await run_in_threadpool(start_session, request.app.state.store,
                                                   account))
    return response  # type: ignore[return-value]


@router.post("/sign-out")
async def sign_out(request: Request, visitor: VisitorDep,
                   csrf: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = ""
                   ) -> RedirectResponse:
    check_form(request, csrf, visitor.csrf)
    store, secret = request.app.state.store, session_token(request) or ""
    await run_in_threadpool(end_session, store, secret)
    response = RedirectResponse("/sign-in", 303, headers=SECURITY_HEADERS)
    forget_session(response)
    return response


def _form(request: Request, flashes: list[tuple[str, str]], next: str,
          status_code: int = 200) -> HTMLResponse:
    placeholder = HTMLResponse("")
    nonce = sign_in_nonce(request, placeholder)
    response = render("sign_in.html", flashes=flashes, sign_in_csrf=nonce, next=next,
                      status_code=status_code)
    response.headers.append("set-cookie", placeholder.headers["set-cookie"])
    return response


def _local(path: str) -> str:
    """Only a path on this site (never `//elsewhere` or a URL): no open redirect."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"
