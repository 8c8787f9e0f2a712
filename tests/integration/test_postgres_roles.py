"""deploy/postgres/roles.sql on a real server: the owner role migrates, the app role runs
everything the coordinator does, and cannot rewrite the privacy records or the audit log
even once their triggers are gone (only privileges are left to refuse it then)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from sangsaeng.server.accounts import (
    Role,
    authenticate,
    create_token,
    end_session,
    start_session,
)
from sangsaeng.server.db import Store, StoreSchemaError
from sangsaeng.server.db.engine import store_engine
from sangsaeng.server.db.schema import upgrade
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.task import TaskSpec

from ..support.postgres import PostgresServer
from ..support.stores import connected, drop_guards

ROLES_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "roles.sql"
REPORT = PrivacyReport(partner="p", dataset="toy", noise_multiplier=1.0, sample_rate=0.1,
                       steps=10, evaluation_noise_multiplier=1e6, trained_parameters=100,
                       delta=1e-5, epsilon=1.0, lifetime_epsilon=1.0, epsilon_cap=4.0,
                       ledger_seq=2, ledger_hash="b" * 64)


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def apply_roles(url: str) -> None:
    with connected(url) as db:  # as the superuser, like an operator with psql
        db.execute(ROLES_SQL.read_text())


def test_the_app_role_runs_the_coordinator_and_cannot_rewrite_history(
        postgres: PostgresServer, small_task: TaskSpec) -> None:
    url = postgres.database()
    owner, app = as_role(url, "sangsaeng_owner"), as_role(url, "sangsaeng_app")
    apply_roles(url)
    with pytest.raises(StoreSchemaError, match="is empty and this login may not create its "
                       "tables: run `sangsaeng admin store upgrade` with the owner's login"):
        Store(app)
    upgrade(store_engine(owner))
    apply_roles(url)  # again, now that the tables are there (and again: it is idempotent)
    apply_roles(url)

    store = Store(app)  # what the API, the ServerApp and the admin commands do
    run_id = lifecycle.create(store, small_task, owner="acme")
    assert lifecycle.claim(store, run_id, 42)
    store.runs.record_round(run_id, 1, trained_nodes=1, metrics={"auc": 0.6})
    store.runs.record_round(run_id, 1, evaluated_nodes=1)
    store.privacy.add(run_id, 1, [(7, REPORT)])
    assert lifecycle.end(store, run_id, COMPLETED, model=b"weights")
    store.tokens.revoke(store.tokens.add("ops", "admin", None, "c" * 64))
    store.catalogue.put("toy", "{}")
    store.catalogue.put("toy", '{"replaced": true}')
    assert store.catalogue.remove("toy")
    account = authenticate(store, create_token(store, "acme-ml", Role.STARTUP, "acme"))
    assert account is not None
    secret = start_session(store, account)
    assert authenticate(store, secret) == account
    end_session(store, secret)
    assert authenticate(store, secret) is None
    assert store.partners.put("p", "A" * 43 + "=", node_key="ecdsa-sha2-nistp384 K")
    store.partners.set_node_id("p", "123")
    assert store.partners.remove("p")
    store.base_models.add("acme", "d" * 64, b"w", [])
    store.audit_log.append(actor="ops", role="admin", tenant=None, action="cli: x", outcome="ok")
    run = store.runs.get(run_id)
    assert (run.status, run.model, [r.epsilon for r in run.privacy_reports]) == (
        COMPLETED, b"weights", [1.0])

    with connected(app) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("DROP TRIGGER audit_log_no_update ON audit_log")  # only its owner may
    with connected(owner) as db:  # who can drop the guards...
        for table in ("privacy_records", "audit_log"):
            drop_guards(db, table)
    with connected(app) as db:  # ...the app still cannot rewrite or remove a row
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log", "UPDATE privacy_records SET epsilon = 0",
                          "DELETE FROM privacy_records", "TRUNCATE privacy_records",
                          "DELETE FROM runs", "UPDATE alembic_version SET version_num = 'x'",
                          "CREATE TABLE mine (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)
    with connected(owner) as db:  # which the owner, unguarded now, could: hence two roles
        assert db.execute("UPDATE audit_log SET actor = 'someone else'").rowcount == 1
