"""The coordinator's API served by uvicorn on loopback, with a real SuperLink behind it
(no partners: runs started here wait for nodes until they are stopped).

The authorization matrix below is the contract: every endpoint × every kind of caller
→ the status it gets. A startup never sees, stops or downloads another tenant's run:
it gets the same 404 as for a run that does not exist.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from flwr.proto.control_pb2 import ListRunsRequest
from flwr.supercore.control.control_http_client import ControlHttpClient

from sangsaeng.api_client import SangsaengApi
from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.api import request_log
from sangsaeng.server.db import Store
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED, FAILED, OPEN, STOPPED
from sangsaeng.shared.models import MAX_WEIGHTS_BYTES, build_model, to_safetensors
from sangsaeng.shared.rest.catalogue import DatasetEntry

from ..support.coordinator import verify
from ..support.processes import flower_processes
from ..support.records import TASK, api_stop, finished_run, register_caravan
from ..support.stores import contents

CALLERS = ["none", "revoked", "admin", "auditor", "acme", "globex"]
BASE = to_safetensors(build_model(TASK, seed=11).state_dict())  # a startup's base model


@dataclass
class Api:
    coordinator: Coordinator
    store: Store
    tokens: dict[str, str]
    acme_run: int  # a completed run of tenant acme, with a model
    globex_run: int

    def call(self, caller: str, method: str, path: str, headers: dict[str, str] | None = None,
             **kwargs: object) -> httpx.Response:
        headers = dict(headers or {})
        if caller != "none":
            headers["Authorization"] = f"Bearer {self.tokens[caller]}"
        return httpx.request(method, f"{self.coordinator.api_url}/api/v1{path}",
                             headers=headers, timeout=30, verify=verify(self.coordinator),
                             **kwargs)  # type: ignore[arg-type]

    def flower_run_count(self) -> int:
        assert self.coordinator.flower.ca_file is not None
        client = ControlHttpClient.from_server_address(
            self.coordinator.flower.address, insecure=False,
            root_certificates=self.coordinator.flower.ca_file.read_bytes(), interceptors=[])
        try:
            return len(client.ListRuns(ListRunsRequest()).run_dict)
        finally:
            client.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, store_url: str):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("api")
    with Coordinator(workdir, store_url) as coordinator:
        store = coordinator.store
        register_caravan(store)
        tokens = {"admin": create_token(store, "ops", Role.ADMIN),
                  "auditor": create_token(store, "kfsa", Role.AUDITOR),
                  "acme": create_token(store, "acme-ml", Role.STARTUP, "acme"),
                  "globex": create_token(store, "globex-ai", Role.STARTUP, "globex"),
                  "revoked": create_token(store, "ex-staff", Role.ADMIN)}
        store.tokens.revoke(store.tokens.list()[-1].id)
        yield Api(coordinator, store, tokens, finished_run(store, "acme"),
                  finished_run(store, "globex"))
        for run in store.runs.list(status=OPEN):  # runs the tests started wait for nodes
            api_stop(coordinator.api_url, tokens["admin"], run.id, coordinator.ca_file)
    assert coordinator.flower.live_pids() == [] and flower_processes() == []


# (method, path) -> status for each caller in CALLERS; {acme} is acme's completed run
MATRIX: dict[tuple[str, str], list[int]] = {
    ("GET", "/health"):             [200, 200, 200, 200, 200, 200],
    ("GET", "/ready"):              [200, 200, 200, 200, 200, 200],
    ("GET", "/me"):                 [401, 401, 200, 200, 200, 200],
    ("GET", "/datasets"):           [401, 401, 200, 200, 200, 200],
    ("GET", "/datasets/caravan"):   [401, 401, 200, 200, 200, 200],
    ("POST", "/models"):            [401, 401, 403, 403, 201, 201],
    ("GET", "/models"):             [401, 401, 403, 403, 200, 200],
    ("POST", "/runs"):              [401, 401, 403, 403, 201, 201],
    ("GET", "/runs"):               [401, 401, 200, 200, 200, 200],
    ("GET", "/runs/{acme}"):        [401, 401, 200, 200, 200, 404],
    ("POST", "/runs/{acme}/stop"):  [401, 401, 409, 403, 409, 404],
    ("GET", "/runs/{acme}/events"): [401, 401, 200, 200, 200, 404],
    ("GET", "/runs/{acme}/model"):  [401, 401, 403, 403, 200, 404],
    ("GET", "/runs/{acme}/card"):   [401, 401, 200, 200, 200, 404],
    ("GET", "/audit/budgets"):      [401, 401, 403, 200, 403, 403],
    ("GET", "/audit/runs"):         [401, 401, 403, 200, 403, 403],
    ("GET", "/audit/partners"):     [401, 401, 403, 200, 403, 403],
    ("GET", "/audit/log"):          [401, 401, 403, 200, 403, 403],
}


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
def test_authorization_matrix(api: Api, method: str, path: str) -> None:
    for caller, expected in zip(CALLERS, MATRIX[method, path], strict=True):
        body = json.loads(TASK.to_json()) if (method, path) == ("POST", "/runs") else None
        weights = BASE if (method, path) == ("POST", "/models") else None
        response = api.call(caller, method, path.format(acme=api.acme_run), json=body,
                            content=weights)
        assert response.status_code == expected, (caller, response.text)
        if expected == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        if expected == 201 and path == "/runs":  # a real run: it waits for partners; stop it
            run = response.json()
            assert run["owner"] == caller and run["status"] == "running"
            api_stop(api.coordinator.api_url, api.tokens["admin"], run["id"],
                     api.coordinator.ca_file)


def test_another_tenants_run_looks_like_no_run(api: Api) -> None:
    missing = 10**6
    for suffix in ("", "/events", "/model", "/card"):
        theirs = api.call("globex", "GET", f"/runs/{api.acme_run}{suffix}")
        none = api.call("globex", "GET", f"/runs/{missing}{suffix}")
        assert theirs.status_code == none.status_code == 404
        assert theirs.text == none.text.replace(str(missing), str(api.acme_run))
    listed = {r["id"] for r in api.call("globex", "GET", "/runs").json()}
    assert api.globex_run in listed and api.acme_run not in listed
    assert all(r["owner"] == "globex" for r in api.call("globex", "GET", "/runs").json())
    everyone = {r["id"] for r in api.call("auditor", "GET", "/runs").json()}
    assert {api.acme_run, api.globex_run} <= everyone


def test_stop_a_running_run(api: Api) -> None:
    with SangsaengApi(api.coordinator.api_url, api.tokens["acme"],
                      ca_file=api.coordinator.ca_file) as acme:
        run = acme.start_run(TASK)
        assert api.call("globex", "POST", f"/runs/{run.id}/stop").status_code == 404
        assert api.call("auditor", "POST", f"/runs/{run.id}/stop").status_code == 403
        assert api.call("acme", "POST", f"/runs/{run.id}/stop").status_code == 202
        deadline = time.monotonic() + 60
        while (run := acme.run(run.id)).status in OPEN:
            assert time.monotonic() < deadline, "the run did not stop"
            time.sleep(0.5)
    assert run.status == STOPPED and run.reason == "stopped before it completed"
    assert api.call("acme", "POST", f"/runs/{run.id}/stop").status_code == 409


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"rounds": None}, "rounds", "Field required"),
    ({"rounds": 0}, "rounds", "greater than or equal to 1"),
    ({"rounds": "SECRET-7431"}, "rounds", "valid integer"),
    ({"dp": {"noise_multiplier": 1.0, "target_epsilon": 3.0}}, "dp",
     "give exactly one of noise_multiplier and target_epsilon"),
    ({"model": {"kind": "transformer"}}, "model.kind", "'logreg', 'mlp' or 'text-classifier'"),
    ({"dataset": "payroll"}, "dataset", "no dataset 'payroll' in the catalogue"),
    ({"features": [{"name": "SALARY", "min": 0, "max": 1}]}, "features.0.name",
     "dataset 'caravan' has no feature column 'SALARY'"),
    ({"features": [{"name": "MOSTYPE", "min": 1, "max": 41}]}, "features.0.kind",
     "column 'MOSTYPE' is categorical in dataset 'caravan'"),
    ({"target": {"name": "Purchase", "classes": ["No", "Maybe"]}}, "target.classes",
     "must be the classes of dataset 'caravan', in order: No, Yes"),
    # issue 15, finding 8: stored, then a 500 on every later GET /runs
    ({"features": [{"name": "MAANTHUI", "min": float("-inf"), "max": 10}]},
     "features.0.numeric.min", "finite number"),
    ({"model": {"kind": "mlp", "hidden": [4096] * 2000}}, "model.hidden", "at most 16"),
])
def test_bad_task_is_422_naming_the_field_and_creates_nothing(
        api: Api, change: dict[str, object], field: str, reason: str) -> None:
    body = json.loads(TASK.to_json())
    for key, value in change.items():
        if value is None:
            del body[key]
        elif isinstance(value, dict) and key == "dp":
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    runs_before, flower_before = len(api.store.runs.list()), api.flower_run_count()
    # json.dumps writes non-finite floats as -Infinity, as a hostile client may send them
    response = api.call("acme", "POST", "/runs", content=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert f"{field}: " in response.json()["message"] and reason in response.json()["message"]
    assert "SECRET-7431" not in response.text  # the input is never echoed
    assert len(api.store.runs.list()) == runs_before and api.flower_run_count() == flower_before


def test_base_models_are_uploaded_checked_and_kept_per_startup(api: Api) -> None:
    """A base model is named by the sha256 of its canonical safetensors; a run may start
    from one its own startup uploaded, if it fits the task's architecture. Every bad
    input is a clear error that creates nothing."""
    state = build_model(TASK, seed=12).state_dict()  # acme's alone
    first = api.call("acme", "POST", "/models", content=to_safetensors(state))
    # the same tensors written in another order are the same base model
    again = api.call("acme", "POST", "/models",
                     content=to_safetensors(dict(reversed(list(state.items())))))
    assert first.status_code == again.status_code == 201
    digest = first.json()["sha256"]
    assert again.json()["sha256"] == digest == hashlib.sha256(
        to_safetensors(state)).hexdigest()
    shapes = {name: list(t.shape) for name, t in build_model(TASK).state_dict().items()}
    assert first.json()["tensors"] == [{"name": name, "dtype": "float32", "shape": shape}
                                       for name, shape in sorted(shapes.items())]
    assert digest in [m["sha256"] for m in api.call("acme", "GET", "/models").json()]
    models_before = len(api.store.base_models.list("acme"))
    for body, code, message in [
            (b"not a safetensors file at all", 422, "weights are not a safetensors file"),
            (b"\0" * (MAX_WEIGHTS_BYTES + 1), 413, "over the limit"),
            (to_safetensors({}), 422, "the file holds no tensors")]:
        response = api.call("acme", "POST", "/models", content=body)
        assert response.status_code == code and message in response.json()["message"]
    assert len(api.store.base_models.list("acme")) == models_before

    mlp = json.loads(TASK.to_json())
    mlp["model"] = {"kind": "mlp", "hidden": [8]}
    width = shapes["0.weight"][1]
    runs_before, flower_before = len(api.store.runs.list()), api.flower_run_count()
    for caller, task, message in [
            ("acme", {**mlp, "base_model": digest}, "base_model: does not fit the task's "
             f"model: tensor '0.weight' is torch.float32 {shapes['0.weight']}; the task's "
             f"model needs torch.float32 [8, {width}]"),
            ("acme", {**json.loads(TASK.to_json()), "base_model": "0" * 64},
             f"base_model: no base model {'0' * 64} uploaded by this account"),
            ("globex", {**json.loads(TASK.to_json()), "base_model": digest},
             f"base_model: no base model {digest} uploaded by this account")]:
        response = api.call(caller, "POST", "/runs", json=task)
        assert response.status_code == 422 and response.json()["message"] == message
    assert len(api.store.runs.list()) == runs_before and api.flower_run_count() == flower_before
    assert digest not in [m["sha256"] for m in api.call("globex", "GET", "/models").json()]


def test_a_text_column_declared_otherwise_is_422(api: Api) -> None:
    text_task = {**json.loads(TASK.to_json()), "dataset": "reviews",
                 "target": {"name": "score", "classes": ["other", "great"]},
                 "model": {"kind": "logreg"},
                 "features": [{"kind": "numeric", "name": "review", "min": 0, "max": 1}]}
    api.store.catalogue.put("reviews", DatasetEntry.model_validate({
        "name": "reviews", "features": [{"kind": "text", "name": "review"}],
        "target": text_task["target"], "partners": 3, "rows": 4000}).model_dump_json())
    response = api.call("acme", "POST", "/runs", json=text_task)
    assert response.status_code == 422
    assert response.json()["message"] == ("features.0.kind: column 'review' is text in "
                                          "dataset 'reviews'")


def test_not_json_is_422(api: Api) -> None:
    response = api.call("acme", "POST", "/runs", content=b"{rounds: 5",
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "JSON decode error" in response.json()["message"]


def test_events_replay_a_finished_run(api: Api) -> None:
    with SangsaengApi(api.coordinator.api_url, api.tokens["auditor"],
                      ca_file=api.coordinator.ca_file) as client:
        events = list(client.events(api.acme_run))
    assert [e.kind for e in events] == ["round", "round", "end"]
    assert [e.data["round"] for e in events[:2]] == [1, 2]
    assert events[1].data["metrics"]["auc"] == 0.62
    assert events[1].data["privacy"][0]["epsilon"] == 3.0
    assert events[2].data == {"status": COMPLETED, "reason": None}


def test_model_and_card(api: Api) -> None:
    with SangsaengApi(api.coordinator.api_url, api.tokens["acme"],
                      ca_file=api.coordinator.ca_file) as client:
        weights, card = client.model(api.acme_run), client.card(api.acme_run)
    assert (weights, card.model_sha256) == api.store.runs.model(api.acme_run)
    assert card.task_sha256 == TASK.sha256() and card.model_sha256 is not None
    assert [r.metrics["auc"] for r in card.metrics] == [0.61, 0.62]
    [spend] = card.privacy
    assert (spend.partner, spend.rounds_trained, spend.epsilon) == ("north-bank", 2, 3.0)


def test_a_run_flower_does_not_know_is_failed_by_reconciliation(api: Api) -> None:
    run_id = lifecycle.create(api.store, TASK, "acme")
    lifecycle.claim(api.store, run_id, 4242)  # the SuperLink never started this one
    deadline = time.monotonic() + 20
    while (run := api.call("acme", "GET", f"/runs/{run_id}").json())["status"] in OPEN:
        assert time.monotonic() < deadline, "the run was not reconciled"
        time.sleep(0.5)
    assert (run["status"], run["reason"]) == (FAILED, "the SuperLink no longer knows this run")


def test_readiness_reports_each_part(api: Api) -> None:
    assert api.call("none", "GET", "/ready").json() == {"ready": True, "store": "ok",
                                                        "superlink": "ok"}


def test_openapi_documents_every_endpoint(api: Api) -> None:
    spec = httpx.get(f"{api.coordinator.api_url}/openapi.json",
                     verify=verify(api.coordinator)).json()
    paths = {(m.upper(), p.removeprefix("/api/v1")) for p, ops in spec["paths"].items()
             for m in ops if not p.startswith("/api/v1/admin/")}  # test_admin_api.py's
    assert paths == {(m, p.replace("{acme}", "{run_id}").replace("caravan", "{name}"))
                     for m, p in MATRIX}


def test_a_flood_of_anonymous_requests_is_counted_not_logged_one_by_one(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(request_log, "AGGREGATE_SECONDS", 1.0)
    for _ in range(2):  # what earlier tests left counted is logged; then a window of its own
        time.sleep(1.1)
        api.call("none", "GET", "/me")
    time.sleep(1.1)
    start = api.store.audit_log.entries(limit=10**6)[-1].seq
    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: api.call("none", "POST", "/runs", content=b"{").status_code,
                              range(200)))
    windows = time.monotonic() - began + 1  # windows of 1 s the flood spanned, at most
    assert codes == [401] * 200  # unparsed: no token, so no 422 about the body
    flood = api.store.audit_log.entries(after=start)
    time.sleep(1.1)
    assert api.call("revoked", "GET", "/me").status_code == 401
    after = api.store.audit_log.entries(after=start)
    assert len(flood) <= 2 * windows  # per window: its first, and the count of the last
    counted = [e for e in after if e.actor == "unauthenticated callers"]
    logged = [e for e in after if e.actor in ("anonymous", "invalid token")]
    total = len(logged) - 1 + sum(int((e.detail or "").split()[0]) for e in counted)
    assert total == 200 and after[-1].actor == "invalid token"


def test_bodies_are_bounded_before_any_route_reads_them(api: Api) -> None:
    def chunks(n: int) -> Iterator[bytes]:
        yield from (b"x" * 2**20 for _ in range(n))

    # anonymous: refused on its headers, whatever it declares or streams
    assert api.call("none", "POST", "/models", content=chunks(80)).status_code == 401
    # with a token: a declared length over the route's limit is refused on the headers
    # alone (no body is ever sent here), a stream as soon as it passes the limit
    host, port = api.coordinator.api_url.removeprefix("https://").split(":")
    for caller, path, size, status in [("acme", "/runs", 3 * 2**20, b"413"),
                                       ("auditor", "/models", 60 * 2**20, b"403")]:
        # a large upload to a route the role may not use: refused before it is read
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                verify(api.coordinator).wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"POST /api/v1{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: "
                        f"Bearer {api.tokens[caller]}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {size}\r\n\r\n".encode())
            assert tls.recv(100).startswith(b"HTTP/1.1 " + status + b" ")
    streamed = api.call("acme", "POST", "/runs", content=chunks(3),
                        headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "over the limit" in streamed.json()["detail"]


def test_ids_past_what_the_store_holds_are_refused_not_failed(api: Api) -> None:
    """PostgreSQL's ids are 32-bit: a larger run id names no run, a larger log position
    is bad input; neither reaches a query (where it failed with a 500)."""
    for suffix in ("", "/events", "/model", "/card"):
        assert api.call("acme", "GET", f"/runs/{2**31}{suffix}").status_code == 404
    assert api.call("acme", "POST", f"/runs/{2**31}/stop").status_code == 404
    assert api.call("auditor", "GET", "/audit/log", params={"after": 2**31}).status_code == 422


def test_tokens_are_stored_hashed(api: Api) -> None:
    db = contents(api.store.url)
    assert all(token.encode() not in db for token in api.tokens.values())


def test_every_api_request_is_in_the_hash_chained_audit_log(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sangsaeng.audit.fetch import AuditApi, fetch
    from sangsaeng.audit.verify import verify

    monkeypatch.setattr(request_log, "AGGREGATE_SECONDS", 0.0)  # every 401 its own entry
    start = api.store.audit_log.entries(limit=10**6)[-1].seq
    assert api.call("none", "GET", "/runs").status_code == 401  # (flushes earlier counts)
    assert api.call("revoked", "GET", "/me").status_code == 401
    assert api.call("globex", "GET", f"/runs/{api.acme_run}/model").status_code == 404
    assert api.call("auditor", "GET", "/audit/budgets").status_code == 200
    assert api.call("none", "GET", "/health").status_code == 200  # probes are not logged
    logged = [(e.actor, e.role, e.tenant, e.action, e.outcome)
              for e in api.store.audit_log.entries(after=start)
              if e.actor != "unauthenticated callers"]
    assert logged == [
        ("anonymous", None, None, "GET /api/v1/runs", "401"),
        ("invalid token", None, None, "GET /api/v1/me", "401"),
        ("globex-ai", "startup", "globex", f"GET /api/v1/runs/{api.acme_run}/model", "404"),
        ("kfsa", "auditor", None, "GET /api/v1/audit/budgets", "200"),
    ]
    # Concurrent requests each get their own entry, and the chain stays intact.
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: api.call("acme", "GET", "/runs").status_code,
                              range(40)))
    assert codes == [200] * 40
    entries = api.store.audit_log.entries(after=start)
    assert [e.seq for e in entries] == list(range(start + 1, start + 1 + len(entries)))
    assert len([e for e in entries if e.actor != "unauthenticated callers"]) == 44
    with AuditApi(api.coordinator.api_url, api.tokens["auditor"],
                  ca_file=api.coordinator.ca_file) as auditor:
        data = fetch(auditor)
    result = verify(data, [])
    assert result.audit_log.ok and result.audit_log.entries >= start + 44
    assert not [f for f in result.failures if f.check == "audit log"]
