"""The store's behaviour and its schema's revisions, on SQLite (tests/integration/
test_store_postgres.py runs these same tests on PostgreSQL: `store_url` and `new_database`
come from tests/unit/conftest.py here, from a PostgreSQL server there)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from sangsaeng.server.db import Store, StoreSchemaError
from sangsaeng.server.db.engine import store_engine
from sangsaeng.server.db.schema import HEAD, upgrade
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED, FAILED, RUNNING, STARTING, STOPPED
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.hash_chain import first_break
from sangsaeng.shared.task import TaskSpec

from ..support.stores import (
    backend,
    connected,
    differences,
    load_before_migrations,
    migrate,
    revision,
    tables,
    triggers,
)

REPORT = PrivacyReport(partner="p", dataset="toy", noise_multiplier=1.0, sample_rate=0.1,
                       steps=10, evaluation_noise_multiplier=1e6, trained_parameters=100,
                       delta=1e-5, epsilon=1.0, lifetime_epsilon=2.5, epsilon_cap=4.0,
                       ledger_seq=2, ledger_hash="b" * 64)


def test_round_rows_merge_and_runs_close(store_url: str, small_task: TaskSpec) -> None:
    store = Store(store_url)
    run_id = lifecycle.create(store, small_task, owner="acme")
    assert store.runs.get(run_id).status == STARTING
    lifecycle.claim(store, run_id, 2**64 - 1)
    bound = store.runs.by_flower_id(2**64 - 1)  # Flower ids exceed int64
    assert bound is not None and bound.status == RUNNING
    store.runs.record_round(run_id, 1, trained_nodes=2)
    store.runs.record_round(run_id, 1, evaluated_nodes=2, metrics={"auc": 0.7})
    store.runs.record_round(run_id, 1, metrics={"loss": 0.3}, partner_errors=["p: refused"])
    assert lifecycle.end(store, run_id, COMPLETED, model=b"weights")
    assert not lifecycle.end(store, run_id, FAILED, "late")  # the first end recorded wins
    run = store.runs.get(run_id)
    assert run.status == COMPLETED and run.model == b"weights" and run.finished_at is not None
    assert run.reason is None and run.model_sha256 == hashlib.sha256(b"weights").hexdigest()
    [row] = run.rounds
    assert (row.trained_nodes, row.evaluated_nodes, row.metrics) == (2, 2, {"auc": 0.7,
                                                                           "loss": 0.3})
    assert row.partner_errors == ["p: refused"]
    other = lifecycle.create(store, small_task, owner="other")
    lifecycle.end(store, other, FAILED, "round 1: timed out")
    assert [r.status for r in store.runs.list()] == [COMPLETED, FAILED]
    assert [r.id for r in store.runs.list(owner="other")] == [other]
    assert store.runs.list(status=(RUNNING,)) == []


def test_a_run_is_bound_to_one_flower_run_while_open(store_url: str,
                                                     small_task: TaskSpec) -> None:
    store = Store(store_url)
    run_id = lifecycle.create(store, small_task, owner="acme")
    assert lifecycle.claim(store, run_id, 42)  # by the API
    assert lifecycle.claim(store, run_id, 42)  # and by the ServerApp
    assert not lifecycle.claim(store, run_id, 43)  # never rebound to another Flower run
    assert (store.runs.get(run_id).status, store.runs.get(run_id).flower_run_id) == (RUNNING,
                                                                                   "42")
    stopped = lifecycle.create(store, small_task, owner="acme")
    lifecycle.end(store, stopped, STOPPED, "stopped before Flower started it")
    assert not lifecycle.claim(store, stopped, 44)  # its ServerApp must not run it
    assert store.runs.get(stopped).status == STOPPED


def test_run_ids_are_never_reused(store_url: str, small_task: TaskSpec) -> None:
    store = Store(store_url)
    first = lifecycle.create(store, small_task, owner="acme")
    with store.session() as s:  # even if the newest row went (by hand, say)
        s.execute(text("DELETE FROM runs"))
    assert lifecycle.create(store, small_task, owner="acme") == first + 1


def test_a_partner_reports_once_per_round(store_url: str, small_task: TaskSpec) -> None:
    store = Store(store_url)
    run_id = lifecycle.create(store, small_task, owner=None)
    store.privacy.add(run_id, 1, [(9, REPORT)])
    with pytest.raises(IntegrityError):  # and nothing of the failed batch is kept
        store.privacy.add(run_id, 1, [(8, REPORT), (9, REPORT)])
    [record] = store.runs.get(run_id).privacy_reports
    assert (record.node_id, record.partner, record.epsilon, record.lifetime_epsilon,
            record.epsilon_cap) == ("9", "p", 1.0, 2.5, 4.0)


def test_privacy_records_and_the_audit_log_are_append_only(store_url: str,
                                                          small_task: TaskSpec) -> None:
    store = Store(store_url)
    store.privacy.add(lifecycle.create(store, small_task, owner=None), 1, [(9, REPORT)])
    store.audit_log.append(actor="ops", role="admin", tenant=None, action="cli: x",
                           outcome="ok")
    verbs = ["UPDATE {table} SET {column} = {value}", "DELETE FROM {table}"]
    if backend(store_url) == "postgresql":
        verbs.append("TRUNCATE {table}")  # fires no row trigger: guarded on its own
    for table, column, value in (("privacy_records", "epsilon", "0"),
                                 ("audit_log", "actor", "'someone else'")):
        for verb in verbs:
            with pytest.raises(IntegrityError, match=f"{table} is append-only"):
                with store.session() as s:
                    s.execute(text(verb.format(table=table, column=column, value=value)))
    [record] = store.privacy.all()
    [entry] = store.audit_log.entries()
    assert (record.epsilon, entry.actor) == (1.0, "ops")


def test_an_empty_database_is_created_at_the_head_revision(store_url: str) -> None:
    Store(store_url)
    assert revision(store_url) == HEAD
    assert differences(store_url) == []
    Store(store_url)  # and opens at head


def test_an_sqlite_store_makes_its_folder(tmp_path: Path) -> None:
    Store(f"sqlite:///{tmp_path / 'nested' / 'store.db'}")
    assert (tmp_path / "nested" / "store.db").exists()


def test_a_store_behind_head_is_refused_until_upgraded(store_url: str) -> None:
    migrate(store_url, "0003")
    with pytest.raises(StoreSchemaError, match=r"at schema revision 0003, this Sangsaeng needs "
                       rf"{HEAD}: back it up, then run `sangsaeng admin store upgrade`"):
        Store(store_url)
    assert revision(store_url) == "0003"  # refused, not changed
    found, head = upgrade(store_engine(store_url))
    assert (found.revision, head) == ("0003", HEAD)
    Store(store_url)
    found, _ = upgrade(store_engine(store_url))  # a second time: nothing to do
    assert found.revision == HEAD


@pytest.mark.parametrize("version", ["6", "7"])
def test_a_store_from_before_migrations_is_upgraded_with_its_records(
        new_database: Callable[[], str], small_task: TaskSpec, version: str) -> None:
    store_url = new_database()
    load_before_migrations(store_url, version)
    with pytest.raises(StoreSchemaError, match=rf"\(schema {version}, from before migrations\), "
                       rf"this Sangsaeng needs {HEAD}: .* `sangsaeng admin store upgrade`"):
        Store(store_url)
    assert "alembic_version" not in tables(store_url)
    found, _ = upgrade(store_engine(store_url))
    assert (found.revision, found.before_migrations) == ({"6": "0001", "7": "0002"}[version],
                                                         version)
    assert revision(store_url) == HEAD and "meta" not in tables(store_url)
    assert differences(store_url) == []  # what the tables declare, exactly
    fresh = Store(new_database()).url
    assert triggers(store_url) == triggers(fresh)  # PostgreSQL's guards included

    store = Store(store_url)
    [listed] = store.runs.list()
    run = store.runs.get(listed.id)
    assert (run.owner, run.status, run.model) == ("acme", COMPLETED, b"weights")
    assert [r.epsilon for r in run.privacy_reports] == [1.5]
    [partner] = store.partners.list()
    assert (partner.name, partner.node_key, partner.removed_at) == ("north-bank", None, None)
    assert store.partners.put("east-credit", "B" * 43 + "=", node_key="ecdsa-sha2-nistp384 K")
    store.audit_log.append(actor="ops", role="admin", tenant=None, action="cli: x",
                           outcome="ok")  # the chain goes on from the old entries
    entries = store.audit_log.entries()
    assert len(entries) == 3 and first_break(e.chained_fields() | {"hash": e.hash}
                                             for e in entries) is None
    assert lifecycle.create(store, small_task, owner="acme") == run.id + 1


def test_a_store_of_a_newer_release_is_refused(store_url: str) -> None:
    Store(store_url)
    with connected(store_url) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    for attempt in (lambda: Store(store_url), lambda: upgrade(store_engine(store_url))):
        with pytest.raises(StoreSchemaError, match="at schema revision 0099, which this "
                           f"Sangsaeng does not know \\(it knows up to {HEAD}\\): a newer "
                           "release wrote it"):
            attempt()
    assert revision(store_url) == "0099"


def test_stores_no_release_can_upgrade_are_refused(new_database: Callable[[], str]) -> None:
    first = new_database()
    with connected(first) as db:  # Sangsaeng 0.1's first store: no meta table
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreSchemaError, match="written by an older Sangsaeng"):
        Store(first)
    unknown = new_database()
    with connected(unknown) as db:
        db.execute("CREATE TABLE meta (key VARCHAR(50) PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    for attempt in (lambda: Store(unknown), lambda: upgrade(store_engine(unknown))):
        with pytest.raises(StoreSchemaError, match="has schema version 5, which no release "
                           "with migrations can upgrade"):
            attempt()
