"""The dashboard: server-rendered pages on the API's origin for startups, auditors and the
operator. It reads and changes things only through the API (server/web/api.py), so it
has no rules of its own about who may see what."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from sangsaeng.shared.web import SECURITY_HEADERS, STATIC_DIR

from .api import ApiProblem, SessionEnded
from .pages import render
from .routes import audit, catalogue, operator, runs, sign_in
from .session import FormRefused, forget_session
from .verification import Verifier


def attach(app: FastAPI, verifier: Verifier | None) -> None:
    """Serve the dashboard from `app` (the API's), beside /api."""
    app.state.verifier = verifier
    app.add_exception_handler(SessionEnded, _sign_in_again)  # type: ignore[arg-type]
    app.add_exception_handler(ApiProblem, _problem)  # type: ignore[arg-type]
    app.add_exception_handler(FormRefused, _refused)  # type: ignore[arg-type]
    app.mount("/static/web", StaticFiles(directory=Path(__file__).parent / "static"),
              name="web-static")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for routes in (sign_in, runs, catalogue, audit, operator):
        app.include_router(routes.router, include_in_schema=False)


def _problem(_: Request, err: ApiProblem) -> HTMLResponse:
    """What the API refused (a role that may not, a run not visible), as a page."""
    title = {403: "Not for this role", 404: "Not found"}.get(err.status, "Refused")
    return render("problem.html", status_code=err.status, title=title, message=err.message)


def _refused(_: Request, err: FormRefused) -> HTMLResponse:
    return render("problem.html", status_code=403, title="Form refused", message=str(err))


def _sign_in_again(request: Request, _: SessionEnded) -> RedirectResponse:
    had_session = "__Host-sangsaeng-session" in request.cookies
    target = "/sign-in" + ("?ended=1" if had_session else "")
    if request.method == "GET" and not had_session:
        target += f"{'&' if '?' in target else '?'}next={quote(request.url.path)}"
    response = RedirectResponse(target, 303, headers=SECURITY_HEADERS)
    forget_session(response)
    return response
