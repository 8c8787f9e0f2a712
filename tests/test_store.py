from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from sangsaeng.server.store import COMPLETED, FAILED, RUNNING, Store
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.task import TaskSpec


def test_round_rows_merge_and_runs_close(tmp_path: Path, small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nested' / 's.db'}")
    run_id = store.start_run(2**64 - 1, "toy", small_task.to_json(), small_task.sha256())
    assert store.run_by_flower_id(2**64 - 1).status == RUNNING  # Flower ids exceed int64
    store.record_round(run_id, 1, trained_nodes=2)
    store.record_round(run_id, 1, evaluated_nodes=2, metrics={"auc": 0.7})
    store.record_round(run_id, 1, metrics={"loss": 0.3}, partner_errors=["p: refused"])
    store.end_run(run_id, COMPLETED, model=b"weights")
    run = store.get_run(run_id)
    assert run.status == COMPLETED and run.model == b"weights" and run.finished_at is not None
    [row] = run.rounds
    assert (row.trained_nodes, row.evaluated_nodes, row.metrics) == (2, 2, {"auc": 0.7,
                                                                           "loss": 0.3})
    assert row.partner_errors == ["p: refused"]
    other = store.start_run(7, "toy", small_task.to_json(), small_task.sha256())
    store.end_run(other, FAILED, "round 1: timed out")
    assert [r.status for r in store.list_runs()] == [COMPLETED, FAILED]


def test_a_partner_reports_once_per_round(tmp_path: Path, small_task: TaskSpec) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run_id = store.start_run(1, "toy", small_task.to_json(), small_task.sha256())

    report = PrivacyReport(partner="p", dataset="toy", noise_multiplier=1.0, sample_rate=0.1,
                           steps=10, delta=1e-5, epsilon=1.0, lifetime_epsilon=2.5,
                           epsilon_cap=4.0, ledger_seq=2, ledger_hash="b" * 64)
    store.add_privacy_reports(run_id, 1, [(9, report)])
    with pytest.raises(IntegrityError):  # and nothing of the failed batch is kept
        store.add_privacy_reports(run_id, 1, [(8, report), (9, report)])
    [record] = store.get_run(run_id).privacy_reports
    assert (record.node_id, record.partner, record.epsilon, record.lifetime_epsilon,
            record.epsilon_cap) == ("9", "p", 1.0, 2.5, 4.0)
