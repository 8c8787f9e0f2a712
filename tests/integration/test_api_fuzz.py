"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis): whatever
a caller sends, the served app answers as documented and never with a server error."""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from sangsaeng.server.accounts import Role, authenticate, create_token
from sangsaeng.server.api import create_app
from sangsaeng.server.db import Store
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.flower.control import FlowerControl
from sangsaeng.server.runs.states import OPEN

from ..support.coordinator import verify
from ..support.processes import flower_processes
from ..support.records import api_stop, finished_run, register_caravan
from ..support.tasks import task_with


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, store_url: str):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("fuzz")
    with Coordinator(workdir, store_url) as coordinator:
        store = coordinator.store
        register_caravan(store)
        tokens = {"startup": create_token(store, "acme-ml", Role.STARTUP, "acme"),
                  "auditor": create_token(store, "kfsa", Role.AUDITOR)}
        for owner in ("acme", "globex"):
            finished_run(store, owner)
        yield coordinator, tokens
        admin = create_token(store, "ops", Role.ADMIN)  # made now: fuzzing may revoke any
        for run in store.runs.list(status=OPEN):  # in case a generated task was runnable
            api_stop(coordinator.api_url, admin, run.id, coordinator.ca_file)
    assert coordinator.flower.live_pids() == [] and flower_processes() == []


@pytest.fixture(scope="module")
def api_schema(served):  # type: ignore[no-untyped-def]
    coordinator, _ = served
    return schemathesis.openapi.from_url(f"{coordinator.api_url}/openapi.json",
                                         verify=str(coordinator.ca_file))


# Every operation of the spec, read from the app itself (the served one is fuzzed).
# (schemathesis' own pytest plugin does not run on pytest 9.2, so hypothesis drives it.)
OPERATIONS = [(path, method.upper()) for path, ops in create_app(
    Store("sqlite://"), FlowerControl("127.0.0.1:1")).openapi()["paths"].items() for method in ops]


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_api_answers_as_documented_and_never_fails(api_schema, served, path: str,  # type: ignore[no-untyped-def]
                                                   method: str) -> None:
    coordinator, tokens = served
    # the audit endpoints as the auditor, the admin ones as an admin (anyone else gets a
    # 403), the others as a startup
    admin = path.startswith("/api/v1/admin/")
    token = tokens["auditor" if path.startswith("/api/v1/audit/") else "startup"]
    operation = api_schema[path][method]

    # A task's cross-field rules (max > min, an mlp's hidden layers, one of σ and target
    # ε, ...) are not expressible in JSON Schema, nor is a safetensors file (any bytes are
    # schema-valid), nor a token's tenant that only startups take, nor a key that is a
    # key: schema-valid tasks (and catalogue entries, with the same features), uploads,
    # tokens and partners may rightly get a 422.
    excluded = [positive_data_acceptance] if (path, method) in (
        ("/api/v1/runs", "POST"), ("/api/v1/models", "POST"), ("/api/v1/admin/tokens", "POST"),
        ("/api/v1/admin/partners", "POST"), ("/api/v1/admin/datasets", "POST")) else []

    @given(case=operation.as_strategy())
    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:  # type: ignore[no-untyped-def]
        # an admin token of its own each time: a generated id may revoke the one before
        bearer = create_token(coordinator.store, "fuzz", Role.ADMIN) if admin else token
        case.call_and_validate(headers={"Authorization": f"Bearer {bearer}"}, timeout=30,
                               excluded_checks=excluded, verify=str(coordinator.ca_file))

    try:
        check()
    finally:
        if admin:  # it may have revoked the module's tokens, or changed its catalogue
            restore(coordinator.store, tokens)


def restore(store: Store, tokens: dict[str, str]) -> None:
    """The module's startup and auditor tokens live again (new ones for revoked ones), and
    the caravan entry as registered."""
    for role, (name, tenant) in {"startup": ("acme-ml", "acme"),
                                 "auditor": ("kfsa", None)}.items():
        if authenticate(store, tokens[role]) is None:
            tokens[role] = create_token(store, name, Role(role), tenant)
    register_caravan(store)


# Numbers JSON parsers accept beyond the standard: NaN and infinities (Python's json reads
# them), an overflow to infinity, and an integer past every bound.
BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 40]
NUMERIC_FIELDS = [("rounds",), ("local_epochs",), ("batch_size",), ("learning_rate",),
                  ("min_nodes",), ("round_timeout",), ("seed",), ("dp", "max_grad_norm"),
                  ("dp", "delta"), ("dp", "noise_multiplier"),
                  ("dp", "evaluation_noise_multiplier"), ("features", 1, "min"),
                  ("features", 1, "max"), ("features", 1, "missing"), ("model", "hidden", 0)]


@pytest.mark.parametrize("field", NUMERIC_FIELDS, ids=lambda f: ".".join(map(str, f)))
def test_non_finite_and_huge_numbers_are_refused_and_store_nothing(served, field) -> None:  # type: ignore[no-untyped-def]
    """issue 15, finding 8: min/max = ±inf was accepted, then POST /runs answered 500 after
    storing the run, and GET /runs was 500 for everyone from then on."""
    coordinator, tokens = served
    headers = {"Authorization": f"Bearer {tokens['startup']}",
               "Content-Type": "application/json"}
    task = task_with(model={"kind": "mlp", "hidden": [8]}).model_dump(mode="json")
    before = len(coordinator.store.runs.list())
    for bad in BAD_NUMBERS:
        body = json.loads(json.dumps(task))
        target = body
        for key in field[:-1]:
            target = target[key]
        target[field[-1]] = "__BAD__"
        text = json.dumps(body).replace('"__BAD__"', bad)
        answer = httpx.post(f"{coordinator.api_url}/api/v1/runs", content=text,
                            headers=headers, timeout=30, verify=verify(coordinator))
        assert answer.status_code == 422, (bad, answer.status_code, answer.text[:200])
    assert len(coordinator.store.runs.list()) == before
    listed = httpx.get(f"{coordinator.api_url}/api/v1/runs", headers=headers, timeout=30,
                       verify=verify(coordinator))
    assert listed.status_code == 200


def test_the_fuzzed_task_is_accepted_as_it_is(served) -> None:  # type: ignore[no-untyped-def]
    """The control for the test above: its task, unchanged, is a valid run."""
    coordinator, tokens = served
    task = task_with(model={"kind": "mlp", "hidden": [8]})
    answer = httpx.post(f"{coordinator.api_url}/api/v1/runs", content=task.to_json(),
                        headers={"Authorization": f"Bearer {tokens['startup']}",
                                 "Content-Type": "application/json"}, timeout=30,
                        verify=verify(coordinator))
    assert answer.status_code == 201, answer.text[:300]
