"""The dashboard is a client of the coordinator's own API, called in process: every page
sees exactly what its token's role may see through the API's authorization (there is no
second set of rules), and every call is in the audit log under the token's holder."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request

from sangsaeng.shared.rest import API_PREFIX


class SessionEnded(Exception):
    """The token was revoked, or never valid: the page must sign in again."""


class ApiProblem(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        self.status, self.detail = status, detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if isinstance(self.detail, dict):
            return str(self.detail.get("message") or self.detail.get("detail"))
        return str(self.detail)


class Api:
    def __init__(self, request: Request, token: str) -> None:
        transport = httpx.ASGITransport(app=request.app, client=("127.0.0.1", 0))
        self.client = httpx.AsyncClient(
            transport=transport, base_url=f"https://dashboard.internal{API_PREFIX}",
            headers={"Authorization": f"Bearer {token}"}, timeout=60)

    async def get(self, path: str, **params: Any) -> Any:
        return _answer(await self.client.get(path, params=params or None))

    async def post(self, path: str, json: Any = None) -> Any:
        return _answer(await self.client.post(path, json=json))

    async def close(self) -> None:
        await self.client.aclose()


def _answer(response: httpx.Response) -> Any:
    if response.status_code == 401:
        raise SessionEnded
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:300]}
        raise ApiProblem(response.status_code, body if "message" in body else body.get("detail"))
    return response.json() if response.content else None
