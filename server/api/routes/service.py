"""/health, /ready and /me: is the coordinator up, and who is this token."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from sangsaeng.server.db import Store
from sangsaeng.shared.rest.service import Health, Me, Readiness

from ..deps import AccountDep, ControlDep, StoreDep, documented

router = APIRouter(tags=["service"])


@router.get("/health")
def health() -> Health:
    """Liveness: the API process answers."""
    return Health(status="ok")


@router.get("/ready", responses={503: {"model": Readiness}})
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


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
        return "ok"
    except Exception as err:
        return f"unavailable ({type(err).__name__})"


@router.get("/me", responses=documented(401))
def me(account: AccountDep) -> Me:
    """Who this token is."""
    return Me(name=account.name, role=account.role.value, tenant=account.tenant)
