"""What every client of the coordinator's REST API shares (the startup's, the auditor's):
the bearer token, the base URL, and one error for every refusal or network failure."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Self

import httpx

from .rest import API_PREFIX

API_URL_ENV, TOKEN_ENV, CA_FILE_ENV = "SANGSAENG_API_URL", "SANGSAENG_TOKEN", "SANGSAENG_CA_FILE"
TOKEN_FILE_ENV = "SANGSAENG_TOKEN_FILE"
DEFAULT_API_URL = "https://127.0.0.1:8000"


class ApiError(RuntimeError):
    """The API refused a request, or could not be reached; the message says why (the
    server's own reason, when it gave one)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ApiClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0,
                 ca_file: Path | None = None) -> None:
        """A client of the API at `url`, whose certificate is verified against `ca_file`
        (default: SANGSAENG_CA_FILE, else the system's CAs)."""
        self.url = url
        if not _safe_to_send_token(url):
            raise ApiError(0, f"{url}: the token would cross the network in clear text; use "
                              "https:// (plain http:// only to this machine)")
        self._http = httpx.Client(base_url=url.rstrip("/") + API_PREFIX, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"},
                                  verify=tls_verification(ca_file))

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
            if "CERTIFICATE_VERIFY_FAILED" in str(err):
                raise ApiError(0, f"the API's certificate is not trusted ({self._http.base_url})"
                                  f": give its CA with --ca-file or {CA_FILE_ENV}") from None
            raise ApiError(0, f"cannot reach the API at {self._http.base_url} "
                              f"({type(err).__name__})") from None
        if response.is_error:
            raise ApiError(response.status_code, reason(response))
        return response


def _safe_to_send_token(url: str) -> bool:
    parsed = httpx.URL(url)
    return parsed.scheme == "https" or (
        parsed.scheme == "http" and parsed.host in ("127.0.0.1", "localhost", "::1"))


def tls_verification(ca_file: Path | None = None) -> ssl.SSLContext:
    """How a client verifies the coordinator's certificate: against `ca_file`, else
    SANGSAENG_CA_FILE, else the system's CAs. Never not at all."""
    ca = ca_file or os.environ.get(CA_FILE_ENV) or None
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as err:
        raise ApiError(0, f"cannot read the CA file {ca}: {err}") from None


def reason(response: httpx.Response) -> str:
    """The server's reason for an error answer: its message, else its detail."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)
    return str(body)
