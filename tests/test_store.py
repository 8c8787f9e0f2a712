from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from sangsaeng.server.store import (
    COMPLETED,
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    Store,
    StoreSchemaError,
)
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.task import TaskSpec


def test_round_rows_merge_and_runs_close(tmp_path: Path, small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nested' / 's.db'}")
    run_id = store.create_run(small_task, owner="acme")
    assert store.get_run(run_id).status == STARTING
    store.mark_started(run_id, 2**64 - 1)
    assert store.run_by_flower_id(2**64 - 1).status == RUNNING  # Flower ids exceed int64
    store.record_round(run_id, 1, trained_nodes=2)
    store.record_round(run_id, 1, evaluated_nodes=2, metrics={"auc": 0.7})
    store.record_round(run_id, 1, metrics={"loss": 0.3}, partner_errors=["p: refused"])
    assert store.end_run(run_id, COMPLETED, model=b"weights")
    assert not store.end_run(run_id, FAILED, "late")  # the first end recorded wins
    run = store.get_run(run_id)
    assert run.status == COMPLETED and run.model == b"weights" and run.finished_at is not None
    assert run.reason is None and run.model_sha256 == hashlib.sha256(b"weights").hexdigest()
    [row] = run.rounds
    assert (row.trained_nodes, row.evaluated_nodes, row.metrics) == (2, 2, {"auc": 0.7,
                                                                           "loss": 0.3})
    assert row.partner_errors == ["p: refused"]
    other = store.create_run(small_task, owner="other")
    store.end_run(other, FAILED, "round 1: timed out")
    assert [r.status for r in store.list_runs()] == [COMPLETED, FAILED]
    assert [r.id for r in store.list_runs(owner="other")] == [other]
    assert store.list_runs(status=(RUNNING,)) == []


def test_a_run_is_bound_to_one_flower_run_while_open(tmp_path: Path,
                                                     small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run_id = store.create_run(small_task, owner="acme")
    assert store.mark_started(run_id, 42) and store.mark_started(run_id, 42)  # API, ServerApp
    assert not store.mark_started(run_id, 43)  # never rebound to another Flower run
    assert (store.get_run(run_id).status, store.get_run(run_id).flower_run_id) == (RUNNING,
                                                                                   "42")
    stopped = store.create_run(small_task, owner="acme")
    store.end_run(stopped, STOPPED, "stopped before Flower started it")
    assert not store.mark_started(stopped, 44)  # its ServerApp must not run it
    assert store.get_run(stopped).status == STOPPED


def test_run_ids_are_never_reused(tmp_path: Path, small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    first = store.create_run(small_task, owner="acme")
    with store.session() as s:  # even if the newest row went (by hand, say)
        s.execute(text("DELETE FROM runs"))
    assert store.create_run(small_task, owner="acme") == first + 1


def test_a_store_of_another_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # what Sangsaeng 0.1's first store looked like: no meta
        conn.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY)"))
    with pytest.raises(StoreSchemaError, match="written by an older Sangsaeng"):
        Store(url)
    Store(f"sqlite:///{tmp_path / 'new.db'}")
    with create_engine(f"sqlite:///{tmp_path / 'new.db'}").begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    with pytest.raises(StoreSchemaError, match="schema version 99"):
        Store(f"sqlite:///{tmp_path / 'new.db'}")


def test_a_partner_reports_once_per_round(tmp_path: Path, small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run_id = store.create_run(small_task, owner=None)

    report = PrivacyReport(partner="p", dataset="toy", noise_multiplier=1.0, sample_rate=0.1,
                           steps=10, delta=1e-5, epsilon=1.0, lifetime_epsilon=2.5,
                           epsilon_cap=4.0, ledger_seq=2, ledger_hash="b" * 64)
    store.add_privacy_reports(run_id, 1, [(9, report)])
    with pytest.raises(IntegrityError):  # and nothing of the failed batch is kept
        store.add_privacy_reports(run_id, 1, [(8, report), (9, report)])
    [record] = store.get_run(run_id).privacy_reports
    assert (record.node_id, record.partner, record.epsilon, record.lifetime_epsilon,
            record.epsilon_cap) == ("9", "p", 1.0, 2.5, 4.0)
