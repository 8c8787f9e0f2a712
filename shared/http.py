"""What every client of the coordinator's REST API shares (the startup's, the auditor's):
the bearer token, the base URL, and one error for every refusal or network failure."""

from __future__ import annotations

from typing import Any, Self

import httpx

from .rest import API_PREFIX

API_URL_ENV, TOKEN_ENV = "SANGSAENG_API_URL", "SANGSAENG_TOKEN"
DEFAULT_API_URL = "http://127.0.0.1:8000"


class ApiError(RuntimeError):
    """The API refused a request, or could not be reached; the message says why (the
    server's own reason, when it gave one)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ApiClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url.rstrip("/") + API_PREFIX, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ApiError(0, f"cannot reach the API at {self._http.base_url} "
                              f"({type(err).__name__})") from None
        if response.is_error:
            raise ApiError(response.status_code, reason(response))
        return response


def reason(response: httpx.Response) -> str:
    """The server's reason for an error answer: its message, else its detail."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)
    return str(body)
