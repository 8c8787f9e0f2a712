"""The partner page's web app: GET only, on 127.0.0.1 only, for a Host naming it only.

A page elsewhere in the partner's browser could point a name it controls at 127.0.0.1
(DNS rebinding) and read this page as same-origin: the Host check refuses any name but
the loopback ones, so the budget is shown only to pages opened from this address."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sangsaeng.shared.web import SECURITY_HEADERS, STATIC_DIR

from ..policy import PartnerPolicy, PolicyError, TaskRefused
from .pages import STATIC_URL, Known, render_dataset, render_error, render_index

LOOPBACK = "127.0.0.1"


class Guard:
    """Refuses (before the app sees it) a request for another Host (400) or with another
    method than GET (405), and puts the security headers on every response."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.hosts = {f"{name}:{port}".encode() for name in (LOOPBACK, "localhost")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: uvicorn runs it off
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        hosts = [value.lower() for name, value in scope["headers"] if name == b"host"]
        if len(hosts) != 1 or hosts[0] not in self.hosts:
            response = _error(400, "This page answers only to http://127.0.0.1 or "
                                   "http://localhost at its own port.")
        elif scope["method"] != "GET":
            response = _error(405, "This page only reads: GET is the one method it takes.")
            response.headers["Allow"] = "GET"
        else:
            await self.app(scope, receive, secured)
            return
        await response(scope, receive, secured)


def _error(status: int, message: str) -> Response:
    return HTMLResponse(render_error(status, message), status_code=status)


def create_app(policy_path: Path, port: int) -> ASGIApp:
    """The page for the policy at `policy_path`, served at 127.0.0.1:`port`. The policy
    and the ledgers are read again on every request, as each `client budget` reads them."""

    known: Known = {}  # ε after each entry, computed once per process (the ledger only grows)

    def load() -> PartnerPolicy:
        return PartnerPolicy.load(policy_path)

    def index(request: Request) -> Response:
        try:
            return HTMLResponse(render_index(load()))
        except PolicyError as err:
            return _error(500, str(err))

    def dataset(request: Request) -> Response:
        try:
            return HTMLResponse(render_dataset(load(), request.path_params["name"], known))
        except PolicyError as err:
            return _error(500, str(err))
        except TaskRefused as err:  # no such dataset in the policy
            return _error(404, str(err))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "No such page.")

    # Sync endpoints: Starlette runs them in its thread pool, off the event loop, since
    # reading a ledger and accounting it take a while.
    app = Starlette(routes=[Route("/", index, methods=["GET"]),
                            Route("/datasets/{name}", dataset, methods=["GET"]),
                            Mount(STATIC_URL, StaticFiles(directory=STATIC_DIR))],
                    exception_handlers={404: not_found})
    return Guard(app, port)


def serve(policy_path: Path, port: int, announce: Callable[[str], None]) -> None:
    """Bind 127.0.0.1:`port` (0: any free port), `announce` the page's URL, then serve
    until interrupted. Raises OSError if the port cannot be bound."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # a restart right after Ctrl-C binds again (past connections in TIME_WAIT); on Linux
    # this never lets two servers listen on one port
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(policy_path, port), lifespan="off", access_log=False,
                            log_level="warning", proxy_headers=False, server_header=False)
    announce(f"http://{LOOPBACK}:{port}/")  # connections queue on the bound socket meanwhile
    uvicorn.Server(config).run(sockets=[sock])
