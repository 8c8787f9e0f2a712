from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from sangsaeng.server.db import Store, StoreSchemaError
from sangsaeng.server.runs import lifecycle
from sangsaeng.server.runs.states import COMPLETED, FAILED, RUNNING, STARTING, STOPPED
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.task import TaskSpec


def test_round_rows_merge_and_runs_close(tmp_path: Path, small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nested' / 's.db'}")
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


def test_a_run_is_bound_to_one_flower_run_while_open(tmp_path: Path,
                                                     small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
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


def test_run_ids_are_never_reused(tmp_path: Path, small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    first = lifecycle.create(store, small_task, owner="acme")
    with store.session() as s:  # even if the newest row went (by hand, say)
        s.execute(text("DELETE FROM runs"))
    assert lifecycle.create(store, small_task, owner="acme") == first + 1


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
    run_id = lifecycle.create(store, small_task, owner=None)

    report = PrivacyReport(partner="p", dataset="toy", noise_multiplier=1.0, sample_rate=0.1,
                           steps=10, evaluation_noise_multiplier=1e6, trained_parameters=100,
                           delta=1e-5, epsilon=1.0, lifetime_epsilon=2.5,
                           epsilon_cap=4.0, ledger_seq=2, ledger_hash="b" * 64)
    store.privacy.add(run_id, 1, [(9, report)])
    with pytest.raises(IntegrityError):  # and nothing of the failed batch is kept
        store.privacy.add(run_id, 1, [(8, report), (9, report)])
    [record] = store.runs.get(run_id).privacy_reports
    assert (record.node_id, record.partner, record.epsilon, record.lifetime_epsilon,
            record.epsilon_cap) == ("9", "p", 1.0, 2.5, 4.0)
