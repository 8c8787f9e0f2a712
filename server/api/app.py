"""The coordinator's REST API for startups, auditors and the operator: the app, its error
answers, and the background task that keeps open runs in step with Flower."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sangsaeng import __version__
from sangsaeng.server import web
from sangsaeng.server.db import Store
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.server.flower.node_registry import sync_nodes
from sangsaeng.server.runs.lifecycle import SuperLinkUnavailable
from sangsaeng.server.runs.reconcile import reconcile_open_runs
from sangsaeng.server.web.verification import Verifier
from sangsaeng.shared.rest import API_PREFIX

from .deps import unprocessable
from .gate import Gate
from .request_log import Refusals, RequestLog
from .routes import admin, audit, catalogue, models, runs, service

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 2.0


def create_app(store: Store, control: FlowerControl,
               verifier: Verifier | None = None) -> FastAPI:
    """The API over `store`, driving Flower through `control` (the SuperLink's private
    Control API), and the dashboard beside it (its auditor's page verifies with `verifier`,
    the audit role's checks). A background task keeps open runs in the store, and the
    partners' nodes the SuperLink lets in, in step with Flower."""

    refusals = Refusals()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_reconcile_forever(store, control, refusals))
        yield
        task.cancel()
        await run_in_threadpool(refusals.flush, store, True)

    app = FastAPI(title="Sangsaeng coordinator API", version=__version__, lifespan=lifespan,
                  description="Start federated DP-SGD runs on partners' private tables, "
                  "follow them live, and take home the model. Partners' rows never leave "
                  "them; every response carries aggregates and privacy parameters only.")
    app.state.store, app.state.control = store, control
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(SuperLinkUnavailable, _unavailable)  # type: ignore[arg-type]
    app.add_middleware(Gate, store=store, prefix=API_PREFIX)  # size and token, before all
    app.add_middleware(RequestLog, store=store, prefix=API_PREFIX,  # around it: logs it too
                       refusals=refusals)
    for routes in (service, catalogue, models, runs, audit, admin):
        app.include_router(routes.router, prefix=API_PREFIX)
    web.attach(app, verifier)
    return app


async def _reconcile_forever(store: Store, control: FlowerControl,
                             refusals: Refusals) -> None:
    while True:
        try:
            await run_in_threadpool(refusals.flush, store)
        except Exception as err:  # the store may be away: the count waits for the next try
            log.warning("could not log the count of refused requests: %s", type(err).__name__)
        for what, step in (("partners' nodes", sync_nodes), ("runs", reconcile_open_runs)):
            try:
                await run_in_threadpool(step, store, control)
            except Exception as err:  # the SuperLink may be restarting: try again later
                log.warning("could not reconcile %s with Flower: %s", what,
                            type(err).__name__)
        await asyncio.sleep(RECONCILE_SECONDS)


def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
    """422 naming each bad field and why, without echoing the submitted values."""
    return unprocessable([(tuple(e["loc"]), e["msg"], e["type"]) for e in err.errors()])


def _unavailable(_: Request, err: SuperLinkUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status.HTTP_503_SERVICE_UNAVAILABLE)
