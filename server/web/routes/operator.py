"""The operator's view: API tokens (a new one is shown once), partners and their keys,
and the catalogue. Every change is an admin API call, so the audit log records it."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sangsaeng.shared.web import SECURITY_HEADERS

from ..api import ApiProblem
from ..pages import Visitor, VisitorDep, render
from ..session import CSRF_FIELD, check_form
from ..uploads import uploaded_document

router = APIRouter(prefix="/operator")
NEW_TOKEN_COOKIE = "__Host-sangsaeng-new-token"
CsrfField = Annotated[str, Form(alias=CSRF_FIELD, max_length=100)]
Text = Annotated[str, Form(max_length=5000)]


@router.get("")
async def overview(request: Request, visitor: VisitorDep) -> HTMLResponse:
    try:
        created = json.loads(request.cookies.get(NEW_TOKEN_COOKIE) or "null")
    except ValueError:
        created = None
    response = await _page(visitor, new_token=created if isinstance(created, dict) else None)
    response.delete_cookie(NEW_TOKEN_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")
    return response


@router.post("/tokens")
async def create_token(request: Request, visitor: VisitorDep, csrf: CsrfField = "",
                       name: Text = "", role: Text = "", tenant: Text = "") -> Any:
    check_form(request, csrf, visitor.csrf)
    body = {"name": name.strip(), "role": role, "tenant": tenant.strip() or None}
    try:
        created = await visitor.api.post("/admin/tokens", body)
    except ApiProblem as err:
        return await _page(visitor, err.status, [("error", err.message)])
    # Shown once by the page this redirects to, which forgets it: reloading that page
    # cannot create a second token (as re-posting this form would).
    response = RedirectResponse("/operator", 303, headers=SECURITY_HEADERS)
    response.set_cookie(NEW_TOKEN_COOKIE, json.dumps(created), max_age=120, path="/",
                        secure=True, httponly=True, samesite="strict")
    return response


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: int, request: Request, visitor: VisitorDep,
                       csrf: CsrfField = "") -> Any:
    check_form(request, csrf, visitor.csrf)
    return await _change(visitor, f"/admin/tokens/{token_id}/revoke", None)


@router.post("/partners")
async def add_partner(request: Request, visitor: VisitorDep, csrf: CsrfField = "",
                      name: Text = "", public_key: Text = "", node_key: Text = "",
                      replace: Annotated[bool, Form()] = False) -> Any:
    check_form(request, csrf, visitor.csrf)
    body = {"name": name.strip(), "public_key": public_key.strip(),
            "node_key": node_key.strip() or None, "replace": replace}
    return await _change(visitor, "/admin/partners", body)


@router.post("/partners/{name}/remove")
async def remove_partner(name: str, request: Request, visitor: VisitorDep,
                         csrf: CsrfField = "") -> Any:
    check_form(request, csrf, visitor.csrf)
    return await _change(visitor, f"/admin/partners/{quote(name, safe='')}/remove", None)


@router.post("/datasets")
async def add_dataset(request: Request, visitor: VisitorDep) -> Any:
    form = await request.form(max_files=1, max_fields=5)
    check_form(request, form.get(CSRF_FIELD), visitor.csrf)
    try:
        entry = await uploaded_document(form.get("entry_file"), "catalogue entry")
    except ValueError as err:
        return await _page(visitor, 422, [("error", str(err))])
    return await _change(visitor, "/admin/datasets", entry)


@router.post("/datasets/{name}/remove")
async def remove_dataset(name: str, request: Request, visitor: VisitorDep,
                         csrf: CsrfField = "") -> Any:
    check_form(request, csrf, visitor.csrf)
    return await _change(visitor, f"/admin/datasets/{quote(name, safe='')}/remove", None)


async def _change(visitor: Visitor, path: str, body: Any) -> Any:
    try:
        await visitor.api.post(path, body)
    except ApiProblem as err:
        return await _page(visitor, err.status, [("error", err.message)])
    return RedirectResponse("/operator", 303, headers=SECURITY_HEADERS)


async def _page(visitor: Visitor, status_code: int = 200,
                flashes: list[tuple[str, str]] | None = None,
                new_token: dict[str, Any] | None = None) -> HTMLResponse:
    tokens, partners, datasets = await asyncio.gather(
        visitor.api.get("/admin/tokens"), visitor.api.get("/admin/partners"),
        visitor.api.get("/datasets"))
    return render("operator.html", visitor, status_code, tokens=tokens, partners=partners,
                  datasets=datasets, flashes=flashes or [], new_token=new_token)
