"""/runs: start, list, follow (server-sent events), stop, and take home the model and its
card."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from sangsaeng.server import base_models
from sangsaeng.server.accounts import Account, Role
from sangsaeng.server.catalogue import task_problems
from sangsaeng.server.db.tables import Run
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import OPEN
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.runs import ModelCard, RunOut, RunSummary
from sangsaeng.shared.rest.service import Unprocessable
from sangsaeng.shared.task import TaskSpec

from .. import responses
from ..deps import AccountDep, ControlDep, RunDep, StoreDep, allow, documented, unprocessable
from ..request_log import DETAIL_KEY
from ..responses import round_out, run_out, run_summary

EVENT_POLL_SECONDS = 0.5

router = APIRouter()


@router.post("/runs", tags=["runs"], status_code=status.HTTP_201_CREATED,
             responses={**documented(401, 403, 503),
                        422: {"model": Unprocessable,
                              "description": "each bad field of the task, and why"}})
def create_run(task: TaskSpec, request: Request, store: StoreDep, control: ControlDep,
               account: Annotated[Account, allow(Role.STARTUP)]) -> Any:
    """Start a run of `task` on its dataset's partners. Each partner checks the task against
    its own policy and budget, and may refuse."""
    entry = store.catalogue.get(task.dataset)
    if entry is None:
        return unprocessable([(("body", "dataset"),
                               f"no dataset '{task.dataset}' in the catalogue", "catalogue")])
    problems = task_problems(task, DatasetEntry.model_validate_json(entry.entry_json))
    if problems:
        return unprocessable([(("body", *loc), msg, "catalogue") for loc, msg in problems])
    problems = base_models.task_problems(store, task, account.tenant)
    if problems:
        return unprocessable([(("body", *loc), msg, "base_model") for loc, msg in problems])
    run = lifecycle.start(store, control, task, account.tenant)
    setattr(request.state, DETAIL_KEY, f"run {run.id}, task {task.sha256()[:12]}")
    return run_out(run)


@router.get("/runs", tags=["runs"], responses=documented(401))
def list_runs(store: StoreDep, account: AccountDep) -> list[RunSummary]:
    """Runs this account may see (a startup: its own), oldest first."""
    owner = account.tenant if account.role == Role.STARTUP else None
    return [run_summary(r) for r in store.runs.list(owner=owner)]


@router.get("/runs/{run_id}", tags=["runs"], responses=documented(401, 404))
def get_run(run: RunDep) -> RunOut:
    """A run with its status, per-round metrics and partners' privacy reports."""
    return run_out(run)


@router.post("/runs/{run_id}/stop", tags=["runs"], status_code=status.HTTP_202_ACCEPTED,
             responses=documented(401, 403, 404, 409, 503),
             dependencies=[allow(Role.STARTUP, Role.ADMIN)])
def stop_run(run: RunDep, store: StoreDep, control: ControlDep) -> RunOut:
    """Ask Flower to stop the run; its status turns 'stopped' once it has."""
    try:
        lifecycle.stop(store, control, run)
    except lifecycle.RunNotOpen as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    return run_out(store.runs.get(run.id))


@router.get("/runs/{run_id}/events", tags=["runs"], response_class=EventSourceResponse,
            responses=documented(401, 404, streaming=True))
async def run_events(run: RunDep, store: StoreDep, account: AccountDep
                     ) -> AsyncIterator[ServerSentEvent]:
    """Live progress as server-sent events: `status`, `round` (metrics and ε once a round
    is evaluated), `partner_error`, and a last `end`. Each connection replays the run so
    far, then follows it until it ends, or until its token is revoked (or the dashboard
    session it came with ends)."""
    follower = _Follower()
    while True:
        current = await run_in_threadpool(store.runs.find, run.id)
        if current is None or not await run_in_threadpool(account.still_live, store):
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
                yield self._event("round", round_out(row, run).model_dump(mode="json"))
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
    weights, digest = store.runs.model(run.id)
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
    return responses.model_card(run)
