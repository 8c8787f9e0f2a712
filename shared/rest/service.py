"""Bodies of the service endpoints and of every error answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    store: str
    superlink: str


class Me(BaseModel):
    name: str
    role: str
    tenant: str | None


class Problem(BaseModel):
    detail: str


class Unprocessable(BaseModel):
    detail: list[dict[str, Any]]
    message: str
