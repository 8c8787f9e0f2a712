"""What the API's routes share: the store and Flower control of the app, the caller's
account and role checks, the visible run, and the error answers (documented and 422)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sangsaeng.server.accounts import Account, Role, authenticate
from sangsaeng.server.db import Store
from sangsaeng.server.db.tables import MAX_ID, Run
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.shared.rest.service import Problem

bearer = HTTPBearer(auto_error=False, description="an API token from "
                    "`sangsaeng admin token create`")


def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def get_control(request: Request) -> FlowerControl:
    return request.app.state.control  # type: ignore[no-any-return]


StoreDep = Annotated[Store, Depends(get_store)]
ControlDep = Annotated[FlowerControl, Depends(get_control)]


def current_account(
    request: Request, store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Account:
    account = getattr(request.state, "account", None)  # the Gate's (server/api/gate.py)
    if account is None and credentials is not None:
        account = authenticate(store, credentials.credentials)
    request.state.account = account  # who, for the audit log
    if account is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "a valid API token is needed (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})
    return account


AccountDep = Annotated[Account, Depends(current_account)]


def allow(*roles: Role) -> Any:
    def check(account: AccountDep) -> Account:
        if account.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"the {account.role} role may not do this")
        return account
    return Depends(check)


def visible_run(run_id: int, store: StoreDep, account: AccountDep) -> Run:
    """The run, if this account may see it: startups see only their own; another tenant's
    run is reported as missing, so its existence does not leak."""
    owner = account.tenant if account.role == Role.STARTUP else None
    run = store.runs.find(run_id, owner=owner) if 0 < run_id <= MAX_ID else None
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id}")
    return run


RunDep = Annotated[Run, Depends(visible_run)]
EVERYONE = (Role.ADMIN, Role.STARTUP, Role.AUDITOR)


def documented(*codes: int, streaming: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers an endpoint gives (always JSON, also where
    the success is a stream, for which the schema is named rather than given as a model)."""
    why = {401: "no token, or an unknown or revoked one", 403: "the role may not do this",
           404: "no such run visible to this token", 409: "the run's state does not allow it",
           503: "the SuperLink did not answer"}
    if streaming:
        json_problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        return {code: {"description": why[code], "content": json_problem} for code in codes}
    return {code: {"model": Problem, "description": why[code]} for code in codes}


def unprocessable(problems: list[tuple[tuple[Any, ...], str, str]],
                  status_code: int = status.HTTP_422_UNPROCESSABLE_CONTENT) -> JSONResponse:
    """422 (or `status_code`) from (field path, reason, kind of problem) triples."""
    detail = [{"loc": list(loc), "msg": msg, "type": kind} for loc, msg, kind in problems]
    message = "; ".join(f"{'.'.join(str(p) for p in loc[1:]) or loc[0]}: {msg}"
                        for loc, msg, _ in problems)
    return JSONResponse({"detail": detail, "message": message}, status_code)
