"""The startup's client of the coordinator's REST API (the CLI's `sangsaeng run ...` and
the demo use it). Light to import: the REST schemas and httpx, nothing of the server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from sangsaeng.shared.http import ApiClient, ApiError, reason
from sangsaeng.shared.rest.base_models import BaseModelOut
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.runs import ModelCard, RunOut, RunSummary
from sangsaeng.shared.rest.service import Me
from sangsaeng.shared.task import TaskSpec

EVENT_READ_TIMEOUT = 60.0  # the server sends a keep-alive comment every 15 s


@dataclass(frozen=True)
class Event:
    kind: str  # status | round | partner_error | end
    data: dict[str, Any]


class SangsaengApi(ApiClient):
    def me(self) -> Me:
        return Me.model_validate(self._call("GET", "/me"))

    def datasets(self) -> list[DatasetEntry]:
        return [DatasetEntry.model_validate(d) for d in self._call("GET", "/datasets")]

    def dataset(self, name: str) -> DatasetEntry | None:
        """The catalogue entry of `name`; None if there is none."""
        try:  # quoted whole: a name is one path segment, whatever it holds
            return DatasetEntry.model_validate(self._call("GET",
                                                          f"/datasets/{quote(name, safe='')}"))
        except ApiError as err:
            if err.status == httpx.codes.NOT_FOUND:
                return None
            raise

    def upload_model(self, weights: bytes) -> BaseModelOut:
        """Upload base weights (safetensors bytes); the answer names them by sha256."""
        return BaseModelOut.model_validate(self._call(
            "POST", "/models", content=weights,
            headers={"Content-Type": "application/octet-stream"}))

    def base_models(self) -> list[BaseModelOut]:
        return [BaseModelOut.model_validate(m) for m in self._call("GET", "/models")]

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
                raise ApiError(response.status_code, reason(response))
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
