"""The operator's API (/admin) served by uvicorn with a real SuperLink behind it: tokens,
partners' keys and the catalogue change through it as through `sangsaeng admin`; only an
admin token may use it; a refused change leaves the store as it was; every change is an
audit log entry naming what changed, and a token is shown once, then nowhere."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.db import Store
from sangsaeng.server.db.tables import AuditEntry
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.shared.node_keys import create_node_key
from sangsaeng.shared.signing import create_key

from ..support.coordinator import verify
from ..support.processes import flower_processes
from ..support.records import TASK, register_caravan


@dataclass
class Api:
    coordinator: Coordinator
    store: Store
    tokens: dict[str, str]
    keys: Path  # where tests make partners' keys

    def call(self, caller: str | None, method: str, path: str, json: Any = None,
             token: str | None = None) -> httpx.Response:
        token = token or (self.tokens[caller] if caller else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.coordinator.api_url}/api/v1{path}",
                             headers=headers, json=json, timeout=30,
                             verify=verify(self.coordinator))

    def log_after(self, seq: int) -> list[AuditEntry]:
        return self.store.audit_log.entries(after=seq)

    def head(self) -> int:
        entries = self.store.audit_log.entries(limit=10**6)
        return entries[-1].seq if entries else 0

    def state(self) -> tuple[object, ...]:
        """What the admin API may change, to check that a refused request changed none."""
        s = self.store
        return ([(t.id, t.revoked_at) for t in s.tokens.list()],
                [(p.name, p.public_key, p.node_key, p.removed_at) for p in s.partners.list()],
                [(d.name, d.entry_json) for d in s.catalogue.list()])

    def partner_keys(self, name: str) -> tuple[str, str]:
        """A partner's (signing, node) public keys, made as its own CLI makes them."""
        return (create_key(self.keys / f"{name}.signing.pem"),
                create_node_key(self.keys / f"{name}.node.key"))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, store_url: str) -> Iterator[Api]:
    workdir = tmp_path_factory.mktemp("admin-api")
    with Coordinator(workdir, store_url) as coordinator:
        store = coordinator.store
        register_caravan(store)
        tokens = {"admin": create_token(store, "ops", Role.ADMIN),
                  "auditor": create_token(store, "kfsa", Role.AUDITOR),
                  "acme": create_token(store, "acme-ml", Role.STARTUP, "acme")}
        keys = workdir / "keys"
        keys.mkdir()
        yield Api(coordinator, store, tokens, keys)
    assert coordinator.flower.live_pids() == [] and flower_processes() == []


def entry(name: str = "claims", rows: int = 1234) -> dict[str, Any]:
    return {"name": name, "description": "insurance claims", "rows": rows, "partners": 2,
            "features": [f.model_dump(mode="json") for f in TASK.features],
            "target": TASK.target.model_dump(mode="json")}


def fingerprint(key: str) -> str:
    """As `ssh-keygen -l` prints an OpenSSH key's (and of the raw bytes of a signing key)."""
    blob = base64.b64decode(key.split()[-1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def test_only_an_admin_token_may_use_any_admin_endpoint(api: Api) -> None:
    signing, node = api.partner_keys("matrix")
    requests = [("GET", "/admin/tokens", None),
                ("POST", "/admin/tokens", {"name": "x", "role": "admin"}),
                ("POST", "/admin/tokens/1/revoke", None),
                ("GET", "/admin/partners", None),
                ("POST", "/admin/partners", {"name": "matrix", "public_key": signing,
                                             "node_key": node}),
                ("POST", "/admin/partners/matrix/remove", None),
                ("POST", "/admin/datasets", entry("matrix")),
                ("POST", "/admin/datasets/caravan/remove", None)]
    before = api.state()
    for method, path, body in requests:
        anonymous = api.call(None, method, path, json=body)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"] == "Bearer"
        for caller in ("auditor", "acme"):  # valid bodies: refused for the role alone
            answer = api.call(caller, method, path, json=body)
            assert answer.status_code == 403, (caller, path, answer.text)
            role = "auditor" if caller == "auditor" else "startup"
            assert answer.json() == {"detail": f"the {role} role may not do this"}
    assert api.state() == before
    assert api.call("admin", "GET", "/admin/tokens").status_code == 200
    assert api.call("admin", "GET", "/admin/partners").status_code == 200


def test_an_admin_creates_a_token_shown_once_that_then_works(api: Api) -> None:
    start = api.head()
    made = api.call("admin", "POST", "/admin/tokens",
                    json={"name": "initech-ml", "role": "startup", "tenant": "initech"})
    assert made.status_code == 201, made.text
    body = made.json()
    token = body.pop("token")
    assert token.startswith("sgs_")
    assert body.keys() == {"id", "name", "role", "tenant", "created_at", "revoked_at"}
    assert (body["name"], body["role"], body["tenant"], body["revoked_at"]) == \
        ("initech-ml", "startup", "initech", None)
    me = api.call(None, "GET", "/me", token=token)
    assert me.json() == {"name": "initech-ml", "role": "startup", "tenant": "initech"}
    listed = api.call("admin", "GET", "/admin/tokens")
    assert body in listed.json()
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert token not in listed.text and digest not in listed.text
    assert all(t.keys() == body.keys() for t in listed.json())
    created = [e for e in api.log_after(start) if e.action == "POST /api/v1/admin/tokens"]
    assert [(e.actor, e.role, e.outcome, e.detail) for e in created] == [
        ("ops", "admin", "201",
         f"created token {body['id']} 'initech-ml', role startup, tenant initech")]
    logged = json.dumps([[e.actor, e.action, e.detail] for e in api.log_after(0)])
    assert token not in logged and token[4:] not in logged and digest not in logged


def test_a_revoked_token_is_refused_at_once(api: Api) -> None:
    made = api.call("admin", "POST", "/admin/tokens", json={"name": "temp", "role": "auditor"})
    token, token_id = made.json()["token"], made.json()["id"]
    assert api.call(None, "GET", "/audit/budgets", token=token).status_code == 200
    start = api.head()
    revoked = api.call("admin", "POST", f"/admin/tokens/{token_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == token_id and revoked.json()["revoked_at"] is not None
    assert "token" not in revoked.json()
    assert api.call(None, "GET", "/audit/budgets", token=token).status_code == 401
    [logged] = [e for e in api.log_after(start) if e.action.endswith("/revoke")]
    assert (logged.outcome, logged.detail) == ("200", f"revoked token {token_id} 'temp', "
                                                      "role auditor")
    listed = {t["id"]: t for t in api.call("admin", "GET", "/admin/tokens").json()}
    assert listed[token_id]["revoked_at"] is not None
    # revoked already, never given, or past what the store's ids hold: all "no live token"
    for unknown in (token_id, 10**6, 2**31, 0, -1):
        answer = api.call("admin", "POST", f"/admin/tokens/{unknown}/revoke")
        assert answer.status_code == 404, unknown
        assert answer.json() == {"detail": f"no live token {unknown}"}


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "nobody", "role": "startup"}, "tenant"),
    ({"name": "ops2", "role": "admin", "tenant": "acme"}, "tenant"),
    ({"name": "", "role": "auditor"}, "name"),
    ({"name": "x\x00y", "role": "auditor"}, "name"),
    ({"name": "x", "role": "root"}, "role"),
    ({"name": "x", "role": "admin", "expires": 3}, "expires"),
])
def test_a_bad_token_request_is_422_naming_the_field_and_adds_none(
        api: Api, body: dict[str, Any], field: str) -> None:
    before = api.state()
    answer = api.call("admin", "POST", "/admin/tokens", json=body)
    assert answer.status_code == 422, answer.text
    assert [p["loc"] for p in answer.json()["detail"]] == [["body", field]]
    assert api.state() == before


def test_partners_are_registered_replaced_and_removed(api: Api) -> None:
    signing, node = api.partner_keys("south-bank")
    start = api.head()
    added = api.call("admin", "POST", "/admin/partners",
                     json={"name": "south-bank", "public_key": signing, "node_key": node})
    assert added.status_code == 201, added.text
    assert {k: added.json()[k] for k in ("name", "public_key", "node_key", "removed_at")} == \
        {"name": "south-bank", "public_key": signing, "node_key": node, "removed_at": None}
    listed = {p["name"]: p for p in api.call("admin", "GET", "/admin/partners").json()}
    assert listed["south-bank"].keys() == {"name", "public_key", "node_key", "node_id",
                                           "registered_at", "removed_at"}
    before = api.state()
    again = api.call("admin", "POST", "/admin/partners",
                     json={"name": "south-bank", "public_key": signing})
    assert again.status_code == 409 and "is registered" in again.json()["detail"]
    assert api.state() == before
    new_signing, _ = api.partner_keys("south-bank-2")
    replaced = api.call("admin", "POST", "/admin/partners", json={
        "name": "south-bank", "public_key": new_signing, "replace": True})
    assert replaced.status_code == 201, replaced.text
    # replaced without a node key: it keeps the one it has
    assert (replaced.json()["public_key"], replaced.json()["node_key"]) == (new_signing, node)
    removed = api.call("admin", "POST", "/admin/partners/south-bank/remove")
    assert removed.status_code == 200 and removed.json()["removed_at"] is not None
    gone = api.call("admin", "POST", "/admin/partners/south-bank/remove")
    assert gone.status_code == 404
    assert gone.json() == {"detail": "no registered partner 'south-bank'"}
    assert api.call("admin", "POST", "/admin/partners/nobody/remove").status_code == 404
    changes = [(e.action, e.outcome, e.detail) for e in api.log_after(start)
               if e.action.startswith("POST /api/v1/admin/")]
    assert changes == [
        ("POST /api/v1/admin/partners", "201", f"registered partner 'south-bank', signing key "
         f"{fingerprint(signing)}, node key {fingerprint(node)}"),
        ("POST /api/v1/admin/partners", "409", None),
        ("POST /api/v1/admin/partners", "201", f"registered partner 'south-bank', signing key "
         f"{fingerprint(new_signing)}, node key {fingerprint(node)}"),
        ("POST /api/v1/admin/partners/south-bank/remove", "200", f"removed partner "
         f"'south-bank', signing key {fingerprint(new_signing)}, node key {fingerprint(node)}"),
        ("POST /api/v1/admin/partners/south-bank/remove", "404", None),
        ("POST /api/v1/admin/partners/nobody/remove", "404", None),
    ]


def test_a_node_key_is_one_partners_only(api: Api) -> None:
    signing, node = api.partner_keys("east-bank")
    assert api.call("admin", "POST", "/admin/partners", json={
        "name": "east-bank", "public_key": signing, "node_key": node}).status_code == 201
    before = api.state()
    other_signing, _ = api.partner_keys("west-bank")
    taken = api.call("admin", "POST", "/admin/partners", json={
        "name": "west-bank", "public_key": other_signing, "node_key": node})
    assert taken.status_code == 409
    assert taken.json() == {"detail": "another partner already registered this node key"}
    assert api.state() == before
    # the coordinator registers the node key with the SuperLink, which names the node
    deadline = time.monotonic() + 30
    while not (row := api.store.partners.get("east-bank")) or row.node_id is None:
        assert time.monotonic() < deadline, "the node key never reached the SuperLink"
        time.sleep(0.5)
    listed = {p["name"]: p for p in api.call("admin", "GET", "/admin/partners").json()}
    assert listed["east-bank"]["node_id"] == row.node_id


def test_bad_keys_are_422_naming_the_field_and_register_nothing(api: Api) -> None:
    signing, node = api.partner_keys("bad-keys")
    before = api.state()
    for body, field in [
            ({"public_key": "not base64!"}, "public_key"),
            ({"public_key": base64.b64encode(b"x" * 31).decode()}, "public_key"),
            ({"public_key": signing, "node_key": "ssh-ed25519 AAAA"}, "node_key"),
            ({"public_key": signing, "node_key": signing}, "node_key"),
            ({"public_key": node, "node_key": node}, "public_key")]:
        answer = api.call("admin", "POST", "/admin/partners", json={"name": "bad-keys", **body})
        assert answer.status_code == 422, (body, answer.text)
        assert [p["loc"] for p in answer.json()["detail"]] == [["body", field]]
        assert field in answer.json()["message"]
    assert api.state() == before
    assert "bad-keys" not in {p["name"] for p in api.call("admin", "GET",
                                                          "/admin/partners").json()}


def test_partner_names_that_would_address_another_are_422(api: Api) -> None:
    """A name is a path segment of the endpoints and pages that remove its partner:
    `x/../south-bank` would have the dashboard's Remove button remove south-bank."""
    signing, _ = api.partner_keys("named")
    before = api.state()
    for name in ["x/../south-bank", "a/b", "a\\b", ".", ".."]:
        answer = api.call("admin", "POST", "/admin/partners",
                          json={"name": name, "public_key": signing})
        assert answer.status_code == 422, (name, answer.text)
        assert [p["loc"] for p in answer.json()["detail"]] == [["body", "name"]]
    assert api.state() == before


def test_a_dataset_added_is_in_the_catalogue_and_removed_is_not(api: Api) -> None:
    start = api.head()
    added = api.call("admin", "POST", "/admin/datasets", json=entry())
    assert added.status_code == 201, added.text
    assert added.json()["rows"] == 1200  # published rounded, as the CLI's
    catalogue = {d["name"]: d for d in api.call("acme", "GET", "/datasets").json()}
    assert catalogue["claims"] == added.json()
    assert api.call("acme", "GET", "/datasets/claims").json() == added.json()
    replaced = api.call("admin", "POST", "/admin/datasets", json=entry(rows=5000))
    assert replaced.status_code == 201 and replaced.json()["rows"] == 5000
    before = api.state()
    bad = api.call("admin", "POST", "/admin/datasets", json={**entry(), "rows": -1})
    assert bad.status_code == 422
    assert [p["loc"] for p in bad.json()["detail"]] == [["body", "rows"]]
    assert api.state() == before
    removed = api.call("admin", "POST", "/admin/datasets/claims/remove")
    assert removed.status_code == 200 and removed.json()["rows"] == 5000
    assert api.call("acme", "GET", "/datasets/claims").status_code == 404
    assert "claims" not in {d["name"] for d in api.call("acme", "GET", "/datasets").json()}
    assert api.call("admin", "POST", "/admin/datasets/claims/remove").status_code == 404
    assert api.call("admin", "POST", "/admin/datasets/a%20b/remove").status_code == 422
    features = len(TASK.features)
    changes = [(e.action, e.outcome, e.detail) for e in api.log_after(start)
               if e.action.startswith("POST /api/v1/admin/")]
    assert changes == [
        ("POST /api/v1/admin/datasets", "201", f"added dataset 'claims': {features} features, "
         f"target {TASK.target.name}, ~1200 rows over 2 partners"),
        ("POST /api/v1/admin/datasets", "201", f"replaced dataset 'claims': {features} "
         f"features, target {TASK.target.name}, ~5000 rows over 2 partners"),
        ("POST /api/v1/admin/datasets", "422", None),
        ("POST /api/v1/admin/datasets/claims/remove", "200", f"removed dataset 'claims': "
         f"{features} features, target {TASK.target.name}, ~5000 rows over 2 partners"),
        ("POST /api/v1/admin/datasets/claims/remove", "404", None),
        ("POST /api/v1/admin/datasets/a b/remove", "422", None),
    ]


def test_openapi_documents_the_admin_endpoints(api: Api) -> None:
    spec = httpx.get(f"{api.coordinator.api_url}/openapi.json",
                     verify=verify(api.coordinator)).json()
    admin = {(m.upper(), p.removeprefix("/api/v1")) for p, ops in spec["paths"].items()
             for m in ops if p.startswith("/api/v1/admin/")}
    assert admin == {("GET", "/admin/tokens"), ("POST", "/admin/tokens"),
                     ("POST", "/admin/tokens/{token_id}/revoke"),
                     ("GET", "/admin/partners"), ("POST", "/admin/partners"),
                     ("POST", "/admin/partners/{name}/remove"),
                     ("POST", "/admin/datasets"), ("POST", "/admin/datasets/{name}/remove")}
    schemas = spec["components"]["schemas"]
    assert "token" in schemas["TokenCreated"]["properties"]
    assert "token" not in schemas["TokenOut"]["properties"]
