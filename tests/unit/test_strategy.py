"""The ServerApp's strategy with hand-made replies and a real store (no Flower processes)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict

from sangsaeng.server.db import Store
from sangsaeng.server.flower import strategy as strategy_module
from sangsaeng.server.flower.strategy import RecordingFedAvg, RunFailed
from sangsaeng.server.runs import lifecycle
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.task import TaskSpec
from sangsaeng.shared.wire import PRIVACY

pytestmark = pytest.mark.usefixtures("flower_task_identity")

REPORT = PrivacyReport(partner="acme", dataset="toy", noise_multiplier=1.0, sample_rate=0.1,
                       steps=10, evaluation_noise_multiplier=1e6, trained_parameters=100,
                       delta=1e-5, epsilon=0.9, lifetime_epsilon=1.2, epsilon_cap=4.0,
                       ledger_seq=2, ledger_hash="a" * 64)


def reply(value: float, report: dict[str, object] | None) -> Message:
    content = RecordDict({"arrays": ArrayRecord([np.full(3, value)]),
                          "metrics": MetricRecord({"num-examples": 10})})
    if report is not None:
        content[PRIVACY] = ConfigRecord(report)  # type: ignore[arg-type]
    return Message(content, dst_node_id=0, message_type=MessageType.TRAIN)


def strategy(tmp_path: Path, task: TaskSpec, min_nodes: int,
             node_of: str | None = "acme") -> tuple[RecordingFedAvg, Store]:
    """The strategy of a new run; the node the hand-made replies come from is registered
    as partner `node_of` (None: as nobody's)."""
    task = TaskSpec.from_dict({**task.model_dump(), "min_nodes": min_nodes})
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    if node_of is not None:
        store.partners.put(node_of, "k" * 44)
        store.partners.set_node_id(node_of, str(reply(0, None).metadata.src_node_id))
    run_id = lifecycle.create(store, task, owner=None)
    return RecordingFedAvg(task, store, run_id), store


def test_a_report_is_recorded_under_the_authenticated_partner(
        tmp_path: Path, small_task: TaskSpec) -> None:
    """A node that names another partner spends its own partner's budget: recorded under
    the partner whose key the SuperLink authenticated, and its update is not used."""
    fedavg, store = strategy(tmp_path, small_task, min_nodes=1, node_of="hanbit")
    with pytest.raises(RunFailed, match="the node of partner 'hanbit' reported itself as "
                                        "'acme'"):
        fedavg.aggregate_train(1, [reply(1.0, REPORT.model_dump())])
    [record] = store.runs.get(fedavg.run_id).privacy_reports
    assert (record.partner, record.epsilon) == ("hanbit", 0.9)


def test_a_reply_from_an_unregistered_node_is_neither_used_nor_recorded(
        tmp_path: Path, small_task: TaskSpec) -> None:
    fedavg, store = strategy(tmp_path, small_task, min_nodes=1, node_of=None)
    with pytest.raises(RunFailed, match="a reply from a node no registered partner holds"):
        fedavg.aggregate_train(1, [reply(1.0, REPORT.model_dump())])
    assert store.runs.get(fedavg.run_id).privacy_reports == []


@pytest.mark.parametrize("bad", [None, {**REPORT.model_dump(), "epsilon": -1.0},
                                 {"partner": "acme"}])
def test_update_without_valid_report_is_never_aggregated(
        tmp_path: Path, small_task: TaskSpec, bad: dict[str, object] | None) -> None:
    fedavg, store = strategy(tmp_path, small_task, min_nodes=1)
    arrays, _ = fedavg.aggregate_train(1, [reply(1.0, REPORT.model_dump()), reply(9.0, bad)])
    assert arrays is not None
    np.testing.assert_array_equal(arrays.to_numpy_ndarrays()[0], np.full(3, 1.0))
    [record] = store.runs.get(fedavg.run_id).privacy_reports
    assert (record.partner, record.epsilon) == ("acme", 0.9)


def test_too_few_valid_updates_fail_the_round_but_reports_stay(
        tmp_path: Path, small_task: TaskSpec) -> None:
    fedavg, store = strategy(tmp_path, small_task, min_nodes=2)
    with pytest.raises(RunFailed, match="round 1: 1 of the 2 partner training replies needed "
                                        "arrived; partner errors: a reply without the valid "
                                        "privacy report it needs"):
        fedavg.aggregate_train(1, [reply(1.0, REPORT.model_dump()), reply(9.0, None)])
    assert len(store.runs.get(fedavg.run_id).privacy_reports) == 1
    assert fedavg.latest_arrays is None


class ArrivingNodes:
    """A grid whose partners connect one by one, `every` seconds apart."""

    def __init__(self, nodes: list[int], every: float) -> None:
        self.nodes, self.every, self.start = nodes, every, time.monotonic()

    def get_node_ids(self) -> list[int]:
        arrived = 1 + int((time.monotonic() - self.start) / self.every)
        return self.nodes[:arrived]


def test_a_runs_first_round_waits_for_partners_that_start_together(
        tmp_path: Path, small_task: TaskSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first round goes out once no partner has connected for SETTLE_SECONDS (past the
    minimum): a partner joins a run only at its start. Later rounds do not wait."""
    monkeypatch.setattr(strategy_module, "SETTLE_SECONDS", 0.8)
    monkeypatch.setattr(strategy_module, "NODE_POLL_SECONDS", 0.05)
    fedavg, store = strategy(tmp_path, small_task, min_nodes=1)
    for node in (4, 5, 6, 7):
        store.partners.put(f"bank-{node}", "k" * 44)
        store.partners.set_node_id(f"bank-{node}", str(node))
    store.partners.remove("bank-7")  # its node, still connected, gets nothing
    sent: list[list[int]] = []

    def construct(content: RecordDict, nodes: list[int], kind: str) -> list[Message]:
        sent.append(list(nodes))
        return []

    monkeypatch.setattr(fedavg, "_construct_messages", construct)
    fedavg.configure_train(1, ArrayRecord([np.zeros(3)]), ConfigRecord(),
                           ArrivingNodes([4, 7, 5, 6], every=0.3))  # type: ignore[arg-type]
    fedavg.configure_train(2, ArrayRecord([np.zeros(3)]), ConfigRecord(),
                           ArrivingNodes([4, 5, 6], every=0.3))  # type: ignore[arg-type]
    assert sent == [[4, 5, 6], [4]]


def test_a_removed_partners_reply_is_recorded_but_not_used(
        tmp_path: Path, small_task: TaskSpec) -> None:
    fedavg, store = strategy(tmp_path, small_task, min_nodes=1)
    store.partners.remove("acme")  # removed while its reply was in flight
    with pytest.raises(RunFailed, match="partner 'acme' was removed during the round"):
        fedavg.aggregate_train(1, [reply(1.0, REPORT.model_dump())])
    [record] = store.runs.get(fedavg.run_id).privacy_reports
    assert (record.partner, record.epsilon) == ("acme", 0.9)  # its budget was spent


def test_the_server_optimizer_moves_the_global_model_from_the_average(
        tmp_path: Path, small_task: TaskSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """With server momentum the next global model is current + η m, m = β m + Δ, from the
    model each round's partners were sent and their average (by hand below)."""
    monkeypatch.setattr(strategy_module, "SETTLE_SECONDS", 0.0)
    task = small_task.model_copy(update={"server_optimizer": small_task.server_optimizer
                                         .model_copy(update={"learning_rate": 0.5,
                                                             "momentum": 0.5})})
    fedavg, _ = strategy(tmp_path, task, min_nodes=1)
    monkeypatch.setattr(fedavg, "_construct_messages", lambda *args: [])
    node = int(reply(0, None).metadata.src_node_id)
    sent = ArrayRecord([np.zeros(3)])
    expected = [1.0, 3.0]  # m = 2 -> 0 + 0.5·2; m = 0.5·2 + (4 - 1) = 4 -> 1 + 0.5·4
    for round_, (average, want) in enumerate(zip([2.0, 4.0], expected, strict=True), start=1):
        fedavg.configure_train(round_, sent, ConfigRecord(),
                               ArrivingNodes([node], every=1.0))  # type: ignore[arg-type]
        arrays, _ = fedavg.aggregate_train(round_, [reply(average, REPORT.model_dump())])
        assert arrays is not None and arrays is fedavg.latest_arrays
        np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], np.full(3, want))
        sent = arrays
