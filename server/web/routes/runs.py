"""Runs: the list, a run's live page, starting one (a task file or a form checked against
the catalogue) and stopping it. Every role sees the runs the API shows it."""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import UploadFile

from sangsaeng.server.accounts import Role
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.runs import RunOut, RunSummary
from sangsaeng.shared.web import SECURITY_HEADERS
from sangsaeng.shared.web.charts import Series, bar_chart

from ..api import ApiProblem
from ..pages import Visitor, VisitorDep, render
from ..session import CSRF_FIELD, check_form
from ..uploads import uploaded_document

router = APIRouter()
OPEN = {"starting", "running"}
CsrfField = Annotated[str, Form(alias=CSRF_FIELD, max_length=100)]


@router.get("/runs")
async def runs(visitor: VisitorDep) -> HTMLResponse:
    listed = [RunSummary.model_validate(r) for r in await visitor.api.get("/runs")]
    return render("runs.html", visitor, runs=list(reversed(listed)))


@router.get("/runs/new")
async def new_run(visitor: VisitorDep, dataset: str | None = None) -> HTMLResponse:
    return await _new_run_page(visitor, dataset)


@router.post("/runs/new")
async def start_run(request: Request, visitor: VisitorDep) -> Any:
    form = await request.form(max_files=1, max_fields=2000)
    check_form(request, form.get(CSRF_FIELD), visitor.csrf)
    upload = form.get("task_file")
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            task = await uploaded_document(upload, "task")
        else:
            task = _task_form(form, await _entry(visitor, _text(form.get("dataset"))))
    except ValueError as err:
        return await _new_run_page(visitor, _text(form.get("dataset")), [str(err)], 422, form)
    try:
        run = await visitor.api.post("/runs", task)
    except ApiProblem as err:
        return await _new_run_page(visitor, _text(form.get("dataset")), [err.message],
                                   err.status, form)
    return RedirectResponse(f"/runs/{run['id']}", 303, headers=SECURITY_HEADERS)


@router.get("/runs/{run_id}")
async def run_page(run_id: int, visitor: VisitorDep) -> HTMLResponse:
    return render("run.html", visitor, **await _run_view(visitor, run_id))


@router.get("/runs/{run_id}/live")
async def run_live(run_id: int, visitor: VisitorDep) -> HTMLResponse:
    """The part of the run page that changes: the page's script swaps it in on each event."""
    return render("run_live.html", visitor, **await _run_view(visitor, run_id))


@router.post("/runs/{run_id}/stop")
async def stop_run(run_id: int, request: Request, visitor: VisitorDep,
                   csrf: CsrfField = "") -> Any:
    check_form(request, csrf, visitor.csrf)
    try:
        await visitor.api.post(f"/runs/{run_id}/stop")
    except ApiProblem as err:
        view = await _run_view(visitor, run_id)
        return render("run.html", visitor, err.status, flashes=[("error", err.message)],
                      **view)
    return RedirectResponse(f"/runs/{run_id}", 303, headers=SECURITY_HEADERS)


async def _run_view(visitor: Visitor, run_id: int) -> dict[str, Any]:
    run = RunOut.model_validate(await visitor.api.get(f"/runs/{run_id}"))
    metrics: dict[str, list[tuple[float, float]]] = {}
    spent: dict[str, list[tuple[float, float]]] = {}
    latest = {}
    for r in run.rounds:
        for name, value in r.metrics.items():
            metrics.setdefault(name, []).append((r.round, value))
        for p in r.privacy:
            spent.setdefault(p.partner, []).append((r.round, p.epsilon))
            latest[p.partner] = p
    lifetime_bars = bar_chart([(f"{p.partner} / {p.dataset}", p.lifetime_epsilon, p.epsilon_cap)
                               for p in sorted(latest.values(), key=lambda p: p.partner)],
                              "Each partner dataset's lifetime ε against its cap")
    return {
        "run": run, "open": run.status in OPEN, "latest": sorted(latest.values(),
                                                                 key=lambda p: p.partner),
        "metric_series": [Series(k, v) for k, v in sorted(metrics.items())],
        "epsilon_series": [Series(k, v) for k, v in sorted(spent.items())],
        "lifetime_bars": lifetime_bars,
        "errors": [(r.round, e) for r in run.rounds for e in r.partner_errors],
        "may_stop": visitor.role in (Role.STARTUP, Role.ADMIN),
        "may_download": visitor.role == Role.STARTUP,
    }


async def _new_run_page(visitor: Visitor, dataset: str | None,
                        errors: list[str] | None = None, status_code: int = 200,
                        form: Any = None) -> HTMLResponse:
    """The form, filled in as it was sent (a refused form keeps what was typed)."""
    datasets = [DatasetEntry.model_validate(d) for d in await visitor.api.get("/datasets")]
    chosen = next((d for d in datasets if d.name == dataset), None)
    values = {k: v for k, v in (form or {}).items() if isinstance(v, str) and k != CSRF_FIELD}
    features = set(form.getlist("feature")) if form is not None else set()
    return render("run_new.html", visitor, status_code, datasets=datasets, chosen=chosen,
                  flashes=[("error", e) for e in errors or []], values=values,
                  features=features, may_start=visitor.role == Role.STARTUP)


async def _entry(visitor: Visitor, dataset: str) -> dict[str, Any]:
    if not dataset:
        raise ValueError("choose a dataset first")
    try:
        return await visitor.api.get(f"/datasets/{quote(dataset, safe='')}")  # type: ignore[no-any-return]
    except ApiProblem as err:
        raise ValueError(err.message) from None


def _task_form(form: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """A task from the form's fields; the features' definitions come from the catalogue
    entry, so the form only chooses among them. Empty optional fields are left out."""
    chosen = set(form.getlist("feature"))
    dp: dict[str, Any] = {"max_grad_norm": _number(form, "max_grad_norm"),
                          "delta": _number(form, "delta")}
    budget = _text(form.get("budget"))
    dp["target_epsilon" if budget == "target" else "noise_multiplier"] = _number(
        form, "target_epsilon" if budget == "target" else "noise_multiplier")
    kind = _text(form.get("model"))
    sizes = _text(form.get("hidden")).replace(",", " ").split()
    if not all(size.isdigit() for size in sizes):
        raise ValueError("hidden layer sizes: whole numbers, separated by spaces or commas")
    hidden = [int(size) for size in sizes] if kind == "mlp" else []  # the field is the mlp's
    task = {"dataset": entry["name"], "target": entry["target"],
            "features": [f for f in entry["features"] if f["name"] in chosen],
            "model": {"kind": kind, "hidden": hidden},
            "rounds": _number(form, "rounds"), "learning_rate": _number(form, "learning_rate"),
            "min_nodes": _number(form, "min_nodes"),
            "round_timeout": _number(form, "round_timeout"), "dp": dp}
    for optional in ("local_epochs", "batch_size", "seed"):
        if _text(form.get(optional)):
            task[optional] = _number(form, optional)
    if base := _text(form.get("base_model")):
        task["base_model"] = base
    return task


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(form: Any, name: str) -> float | int | None:
    text = _text(form.get(name))
    if not text:
        return None  # the API names the missing field
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{name.replace('_', ' ')}: not a finite number")
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() \
        else number
