"""Fixtures every test may use, and the marker of each test: the folder it is in says
what it needs (unit: nothing; integration: real servers or Flower processes on loopback;
e2e: the CLIs and the demo as users run them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sangsaeng.demo.data import default_task_path
from sangsaeng.shared.task import TaskSpec, load_task

from .support.postgres import PostgresServer, postgres_server
from .support.processes import tag_this_session

tag_this_session()  # before any test starts a process: every child inherits the tag

KINDS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(str(item.path)).parent.name
        if kind not in KINDS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, "
                                    "tests/integration or tests/e2e")
        if kind == "unit" and "postgres" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: a PostgreSQL server is a process: the "
                                    "test belongs in tests/integration")
        item.add_marker(kind)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the session's own, started when a test first needs it and
    stopped at the end, however the tests ended; `postgres.database()` makes a database."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def caravan_task() -> TaskSpec:
    return load_task(default_task_path())


@pytest.fixture
def small_task() -> TaskSpec:
    """Few numeric columns, one categorical: quick to reason about in unit tests."""
    return TaskSpec.from_dict({
        "dataset": "toy",
        "features": [
            {"name": "age", "min": 18, "max": 100},
            {"name": "income", "min": 0, "max": 1e6},
            {"kind": "categorical", "name": "region", "categories": ["north", "south", 3]},
        ],
        "target": {"name": "churn", "classes": ["no", "yes"]},
        "model": {"kind": "logreg"},
        "rounds": 2, "local_epochs": 1, "batch_size": 8, "learning_rate": 0.1,
        "dp": {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5},
        "min_nodes": 2, "round_timeout": 30,
    })


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def flower_task_identity():  # type: ignore[no-untyped-def]
    """Flower stamps messages with the identity of the running task; outside a SuperNode
    or SuperLink, tests that build Messages by hand set one."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity._run_id = TaskIdentity._node_id = TaskIdentity._task_id = None  # type: ignore[attr-defined]
