"""A small client of the coordinator's REST API, used by the startup CLI and the demo."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from sangsaeng.server.api import API_PREFIX
from sangsaeng.server.api_models import Me, ModelCard, RunOut, RunSummary
from sangsaeng.server.audit_models import AuditLogEntry, AuditRun, DatasetSpend, PartnerKey
from sangsaeng.server.catalogue import DatasetEntry
from sangsaeng.shared.task import TaskSpec

API_URL_ENV, TOKEN_ENV = "SANGSAENG_API_URL", "SANGSAENG_TOKEN"
DEFAULT_API_URL = "http://127.0.0.1:8000"
EVENT_READ_TIMEOUT = 60.0  # the server sends a keep-alive comment every 15 s


class ApiError(RuntimeError):
    """The API refused a request; the message is the server's reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Event:
    kind: str  # status | round | partner_error | end
    data: dict[str, Any]


class SangsaengApi:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/") + API_PREFIX, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SangsaengApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def me(self) -> Me:
        return Me.model_validate(self._call("GET", "/me"))

    def datasets(self) -> list[DatasetEntry]:
        return [DatasetEntry.model_validate(d) for d in self._call("GET", "/datasets")]

    def start_run(self, task: TaskSpec) -> RunOut:
        return RunOut.model_validate(self._call("POST", "/runs", json=task.model_dump(
            mode="json")))

    def runs(self) -> list[RunSummary]:
        return [RunSummary.model_validate(r) for r in self._call("GET", "/runs")]

    def run(self, run_id: int) -> RunOut:
        return RunOut.model_validate(self._call("GET", f"/runs/{run_id}"))

    def stop(self, run_id: int) -> RunOut:
        return RunOut.model_validate(self._call("POST", f"/runs/{run_id}/stop"))

    def card(self, run_id: int) -> ModelCard:
        return ModelCard.model_validate(self._call("GET", f"/runs/{run_id}/card"))

    def model(self, run_id: int) -> bytes:
        """The model's safetensors bytes, checked against the sha256 the server sends."""
        response = self._send("GET", f"/runs/{run_id}/model")
        expected = response.headers.get("x-model-sha256", "")
        if hashlib.sha256(response.content).hexdigest() != expected:
            raise ApiError(response.status_code, "the model download is corrupt (sha256)")
        return response.content

    def audit_runs(self) -> list[AuditRun]:
        return [AuditRun.model_validate(r) for r in self._call("GET", "/audit/runs")]

    def audit_budgets(self) -> list[DatasetSpend]:
        return [DatasetSpend.model_validate(b) for b in self._call("GET", "/audit/budgets")]

    def audit_partners(self) -> list[PartnerKey]:
        return [PartnerKey.model_validate(p) for p in self._call("GET", "/audit/partners")]

    def audit_log(self, page_size: int = 1000) -> list[AuditLogEntry]:
        """The whole audit log, page by page, up to a page that is not full (each request
        adds an entry of its own, so "until empty" would never end)."""
        entries: list[AuditLogEntry] = []
        while True:
            after = entries[-1].seq if entries else 0
            page = self._call("GET", "/audit/log", params={"after": after, "limit": page_size})
            entries += [AuditLogEntry.model_validate(e) for e in page]
            if len(page) < page_size:
                return entries

    def events(self, run_id: int) -> Iterator[Event]:
        """The run's server-sent events, from its start until it ends (the `end` event);
        a stream that breaks off before raises ApiError."""
        lost = f"lost the event stream of run {run_id}"
        again = f"`sangsaeng run watch {run_id}` picks it up again"
        try:
            for event in self._events(run_id):
                yield event
                if event.kind == "end":
                    return
        except httpx.HTTPError as err:
            raise ApiError(0, f"{lost} ({type(err).__name__}); {again}") from None
        raise ApiError(0, f"{lost} before the run ended; {again}")

    def _events(self, run_id: int) -> Iterator[Event]:
        timeout = httpx.Timeout(self._http.timeout.connect, read=EVENT_READ_TIMEOUT)
        with self._http.stream("GET", f"/runs/{run_id}/events", timeout=timeout) as response:
            if response.is_error:
                response.read()
                raise ApiError(response.status_code, _reason(response))
            kind, data = "message", list[str]()
            for line in response.iter_lines():  # the text/event-stream format (WHATWG HTML)
                if not line:
                    if data:
                        yield Event(kind, json.loads("\n".join(data)))
                    kind, data = "message", []
                elif line.startswith(":"):
                    continue  # keep-alive comment
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        kind = value
                    elif name == "data":
                        data.append(value)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ApiError(0, f"cannot reach the API at {self._http.base_url} "
                              f"({type(err).__name__})") from None
        if response.is_error:
            raise ApiError(response.status_code, _reason(response))
        return response


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)
    return str(body)
