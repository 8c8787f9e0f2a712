"""The coordinator's REST API for startups, auditors and the operator (FastAPI, /api/v1).

Routes are thin: accounts.py authenticates, catalogue.py checks tasks, runs.py drives
Flower, store.py persists, api_models.py shapes the answers. Handlers are plain `def`s,
which FastAPI runs in its thread pool, because the store and the Control API are blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from sangsaeng import __version__
from sangsaeng.shared.task import TaskSpec

from . import audit_api, runs
from .accounts import Account, Role
from .api_deps import (
    EVERYONE,
    AccountDep,
    ControlDep,
    RunDep,
    StoreDep,
    Unprocessable,
    allow,
    documented,
)
from .api_models import Health, Me, ModelCard, Readiness, RoundOut, RunOut, RunSummary
from .audit_log import DETAIL_KEY, AuditMiddleware
from .catalogue import DatasetEntry, task_problems
from .control import FlowerControl
from .store import OPEN, Run, Store

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
RECONCILE_SECONDS = 2.0
EVENT_POLL_SECONDS = 0.5


def create_app(store: Store, control: FlowerControl) -> FastAPI:
    """The API over `store`, driving Flower through `control` (the SuperLink's private
    Control API). A background task keeps open runs in the store in step with Flower."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_reconcile_forever(store, control))
        yield
        task.cancel()

    app = FastAPI(title="Sangsaeng coordinator API", version=__version__, lifespan=lifespan,
                  description="Start federated DP-SGD runs on partners' private tables, "
                  "follow them live, and take home the model. Partners' rows never leave "
                  "them; every response carries aggregates and privacy parameters only.")
    app.state.store, app.state.control = store, control
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(runs.SuperLinkUnavailable, _unavailable)  # type: ignore[arg-type]
    app.add_middleware(AuditMiddleware, store=store, prefix=API_PREFIX)
    app.include_router(router, prefix=API_PREFIX)
    app.include_router(audit_api.router, prefix=API_PREFIX)
    return app


async def _reconcile_forever(store: Store, control: FlowerControl) -> None:
    while True:
        try:
            await run_in_threadpool(runs.reconcile_open_runs, store, control)
        except Exception as err:  # the SuperLink may be restarting: try again later
            log.warning("could not reconcile runs with Flower: %s", type(err).__name__)
        await asyncio.sleep(RECONCILE_SECONDS)


def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
    """422 naming each bad field and why, without echoing the submitted values."""
    return _unprocessable([(tuple(e["loc"]), e["msg"], e["type"]) for e in err.errors()])


def _unprocessable(problems: list[tuple[tuple[Any, ...], str, str]]) -> JSONResponse:
    """422 from (field path, reason, kind of problem) triples."""
    detail = [{"loc": list(loc), "msg": msg, "type": kind} for loc, msg, kind in problems]
    message = "; ".join(f"{'.'.join(str(p) for p in loc[1:]) or loc[0]}: {msg}"
                        for loc, msg, _ in problems)
    return JSONResponse({"detail": detail, "message": message},
                        status.HTTP_422_UNPROCESSABLE_CONTENT)


def _unavailable(_: Request, err: runs.SuperLinkUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status.HTTP_503_SERVICE_UNAVAILABLE)


router = APIRouter()


# --- service ----------------------------------------------------------------------------

@router.get("/health", tags=["service"])
def health() -> Health:
    """Liveness: the API process answers."""
    return Health(status="ok")


@router.get("/ready", tags=["service"], responses={503: {"model": Readiness}})
def ready(store: StoreDep, control: ControlDep, response: Response) -> Readiness:
    """Readiness: the store and the SuperLink's Control API both answer."""
    checks = {"store": _check(lambda: _ping_store(store)),
              "superlink": _check(lambda: control.status(0))}
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(ready=ok, **checks)


def _ping_store(store: Store) -> None:
    with store.session() as s:
        s.execute(text("SELECT 1"))


def _check(probe: Any) -> str:
    try:
        probe()
        return "ok"
    except Exception as err:
        return f"unavailable ({type(err).__name__})"


@router.get("/me", tags=["service"], responses=documented(401))
def me(account: AccountDep) -> Me:
    """Who this token is."""
    return Me(name=account.name, role=account.role.value, tenant=account.tenant)


# --- catalogue --------------------------------------------------------------------------

@router.get("/datasets", tags=["catalogue"], dependencies=[allow(*EVERYONE)],
            responses=documented(401))
def list_datasets(store: StoreDep) -> list[DatasetEntry]:
    """Every dataset partners offer: schema and rounded size, never rows."""
    return [DatasetEntry.model_validate_json(d.entry_json) for d in store.list_datasets()]


@router.get("/datasets/{name}", tags=["catalogue"], dependencies=[allow(*EVERYONE)],
            responses=documented(401, 404))
def get_dataset(name: str, store: StoreDep) -> DatasetEntry:
    row = store.get_dataset(name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset '{name}' in the catalogue")
    return DatasetEntry.model_validate_json(row.entry_json)


# --- runs -------------------------------------------------------------------------------

@router.post("/runs", tags=["runs"], status_code=status.HTTP_201_CREATED,
             responses={**documented(401, 403, 503),
                        422: {"model": Unprocessable,
                              "description": "each bad field of the task, and why"}})
def create_run(task: TaskSpec, request: Request, store: StoreDep, control: ControlDep,
               account: Annotated[Account, allow(Role.STARTUP)]) -> Any:
    """Start a run of `task` on its dataset's partners. Each partner checks the task against
    its own policy and budget, and may refuse."""
    entry = store.get_dataset(task.dataset)
    if entry is None:
        return _unprocessable([(("body", "dataset"),
                                f"no dataset '{task.dataset}' in the catalogue", "catalogue")])
    problems = task_problems(task, DatasetEntry.model_validate_json(entry.entry_json))
    if problems:
        return _unprocessable([(("body", *loc), msg, "catalogue") for loc, msg in problems])
    run = runs.start_run(store, control, task, account.tenant)
    setattr(request.state, DETAIL_KEY, f"run {run.id}, task {task.sha256()[:12]}")
    return RunOut.of(run)


@router.get("/runs", tags=["runs"], responses=documented(401))
def list_runs(store: StoreDep, account: AccountDep) -> list[RunSummary]:
    """Runs this account may see (a startup: its own), oldest first."""
    owner = account.tenant if account.role == Role.STARTUP else None
    return [RunSummary.of(r) for r in store.list_runs(owner=owner)]


@router.get("/runs/{run_id}", tags=["runs"], responses=documented(401, 404))
def get_run(run: RunDep) -> RunOut:
    """A run with its status, per-round metrics and partners' privacy reports."""
    return RunOut.of(run)


@router.post("/runs/{run_id}/stop", tags=["runs"], status_code=status.HTTP_202_ACCEPTED,
             responses=documented(401, 403, 404, 409, 503),
             dependencies=[allow(Role.STARTUP, Role.ADMIN)])
def stop_run(run: RunDep, store: StoreDep, control: ControlDep) -> RunOut:
    """Ask Flower to stop the run; its status turns 'stopped' once it has."""
    try:
        runs.stop_run(store, control, run)
    except runs.RunNotOpen as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    return RunOut.of(store.get_run(run.id))


@router.get("/runs/{run_id}/events", tags=["runs"], response_class=EventSourceResponse,
            responses=documented(401, 404, streaming=True))
async def run_events(run: RunDep, store: StoreDep) -> AsyncIterator[ServerSentEvent]:
    """Live progress as server-sent events: `status`, `round` (metrics and ε once a round
    is evaluated), `partner_error`, and a last `end`. Each connection replays the run so
    far, then follows it until it ends."""
    follower = _Follower()
    while True:
        current = await run_in_threadpool(store.find_run, run.id)
        if current is None:
            return
        for event in follower.new_events(current):
            yield event
        if current.status not in OPEN:
            return
        await asyncio.sleep(EVENT_POLL_SECONDS)


class _Follower:
    """What one event stream has already sent."""

    def __init__(self) -> None:
        self.seq = 0
        self.status: str | None = None
        self.rounds: set[int] = set()
        self.errors: dict[int, int] = {}

    def new_events(self, run: Run) -> Iterator[ServerSentEvent]:
        ended = run.status not in OPEN
        for row in run.rounds:
            for message in row.partner_errors[self.errors.get(row.round, 0):]:
                yield self._event("partner_error", {"round": row.round, "message": message})
            self.errors[row.round] = len(row.partner_errors)
            if row.round not in self.rounds and (row.evaluated_nodes or ended):
                self.rounds.add(row.round)
                yield self._event("round", RoundOut.of(row, run).model_dump(mode="json"))
        if run.status != self.status:
            self.status = run.status
            yield self._event("end" if ended else "status",
                              {"status": run.status, "reason": run.reason})

    def _event(self, kind: str, data: dict[str, Any]) -> ServerSentEvent:
        self.seq += 1
        return ServerSentEvent(event=kind, id=str(self.seq), raw_data=json.dumps(data))


@router.get("/runs/{run_id}/model", tags=["models"], dependencies=[allow(Role.STARTUP)],
            response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "the model's weights (safetensors)"},
                       **documented(401, 403, 404, 409)})
def download_model(run: RunDep, store: StoreDep) -> Response:
    """The run's model weights as safetensors: the final model of a completed run, or the
    last aggregated one of a failed or stopped run."""
    weights, digest = store.get_model(run.id)
    if weights is None or digest is None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"run {run.id} has no model ({run.status})")
    return Response(weights, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="sangsaeng-run-{run.id}.safetensors"',
        "X-Model-SHA256": digest,
    })


@router.get("/runs/{run_id}/card", tags=["models"], responses=documented(401, 404))
def model_card(run: RunDep) -> ModelCard:
    """The model card: task, metrics per round, ε per partner; never data."""
    return ModelCard.of(run)
