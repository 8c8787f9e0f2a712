"""The auditor's view: every partner dataset's lifetime ε against its cap, ε over the
rounds of each run, the mechanisms, the audit log, and the verification of partners'
signed ledger exports (the auditor's own checks, as `sangsaeng audit verify` runs them)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sangsaeng.shared.rest.audit import LOG_PAGE, AuditLogEntry, AuditRun, DatasetSpend
from sangsaeng.shared.web.charts import Series, bar_chart

from ..api import Api
from ..pages import VisitorDep, render
from ..session import CSRF_FIELD, check_form
from ..verification import MAX_LEDGER_BYTES, MAX_LEDGER_FILES, Verifier

router = APIRouter(prefix="/audit")
RUNS_SHOWN = 20  # the latest runs, each with its chart and mechanisms
_VERIFYING = asyncio.Lock()


@router.get("")
async def overview(visitor: VisitorDep) -> HTMLResponse:
    budgets, runs = await asyncio.gather(visitor.api.get("/audit/budgets"),
                                         visitor.api.get("/audit/runs"))
    spends = [DatasetSpend.model_validate(b) for b in budgets]
    audit_runs = [AuditRun.model_validate(r) for r in runs][::-1][:RUNS_SHOWN]
    bars = bar_chart([(f"{s.partner} / {s.dataset}", s.reported_epsilon, s.epsilon_cap)
                      for s in spends], "Lifetime ε by partner dataset, against its cap")
    return render("audit.html", visitor, spends=spends, bars=bars, total_runs=len(runs),
                  runs=[_run_view(r) for r in audit_runs])


@router.get("/log")
async def log(visitor: VisitorDep, after: int = 0) -> HTMLResponse:
    after = max(0, min(after, 2**62))
    entries = [AuditLogEntry.model_validate(e)
               for e in await visitor.api.get("/audit/log", after=after, limit=100)]
    return render("audit_log.html", visitor, entries=entries, after=after,
                  next_after=entries[-1].seq if len(entries) == 100 else None)


@router.get("/verify")
async def verify_page(request: Request, visitor: VisitorDep) -> HTMLResponse:
    await visitor.api.get("/audit/partners")  # the auditor's page: the API says who may
    return render("audit_verify.html", visitor, available=_verifier(request) is not None)


@router.post("/verify")
async def verify(request: Request, visitor: VisitorDep) -> HTMLResponse:
    form = await request.form(max_files=MAX_LEDGER_FILES, max_fields=10)
    check_form(request, form.get(CSRF_FIELD), visitor.csrf)
    verifier = _verifier(request)
    if verifier is None:
        return render("audit_verify.html", visitor, 503, available=False)
    files, size = [], 0
    for upload in form.getlist("ledger"):
        if isinstance(upload, UploadFile) and upload.filename:
            content = await upload.read(MAX_LEDGER_BYTES + 1 - size)
            size += len(content)
            if size > MAX_LEDGER_BYTES:
                return render("audit_verify.html", visitor, 413, available=True,
                              flashes=[("error", f"the exports are over {MAX_LEDGER_BYTES} "
                                                 "bytes together")])
            files.append((upload.filename, content))
    try:
        async with _VERIFYING:  # accountants are heavy: one verification at a time
            records = await _records(visitor.api)  # the API refuses other roles
            result = await run_in_threadpool(verifier, records, files)
    except ValueError as err:  # a file that is not a signed ledger export
        return render("audit_verify.html", visitor, 422, available=True,
                      flashes=[("error", str(err))])
    return render("audit_verify.html", visitor, available=True,
                  result=result.model_dump(mode="json"), files=[name for name, _ in files])


def _verifier(request: Request) -> Verifier | None:
    return request.app.state.verifier  # type: ignore[no-any-return]


async def _records(api: Api) -> dict[str, Any]:
    """What `sangsaeng audit verify` fetches: every run, budget, partner key and the
    whole audit log."""
    runs, budgets, partners = await asyncio.gather(
        api.get("/audit/runs"), api.get("/audit/budgets"), api.get("/audit/partners"))
    log: list[Any] = []
    while True:
        page = await api.get("/audit/log", after=log[-1]["seq"] if log else 0, limit=LOG_PAGE)
        log += page
        if len(page) < LOG_PAGE:
            return {"runs": runs, "budgets": budgets, "partners": partners, "log": log}


def _run_view(run: AuditRun) -> dict[str, Any]:
    lifetime: dict[str, list[tuple[float, float]]] = {}
    for r in run.records:
        lifetime.setdefault(f"{r.partner} / {r.dataset}", []).append((r.round,
                                                                      r.lifetime_epsilon))
    caps = {r.epsilon_cap for r in run.records}
    return {"run": run, "series": [Series(k, v) for k, v in sorted(lifetime.items())],
            "cap": caps.pop() if len(caps) == 1 else None}
