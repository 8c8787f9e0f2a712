"""The ClientApp's handlers, called directly with Flower Messages and a Context."""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from sangsaeng.client import client_app, dp_sgd
from sangsaeng.client.data import load_local_data
from sangsaeng.server.demo_data import write_partitions
from sangsaeng.shared.accounting import PRIVACY_KEY, PrivacyReport
from sangsaeng.shared.models import build_model
from sangsaeng.shared.task import TaskSpec

from .conftest import task_with

pytestmark = pytest.mark.usefixtures("flower_task_identity")


def message(task: TaskSpec, kind: str) -> Message:
    return Message(RecordDict({"arrays": ArrayRecord(build_model(task, seed=0).state_dict()),
                               "config": ConfigRecord({})}), dst_node_id=5, message_type=kind)


def context(task: TaskSpec, data_path: Path) -> Context:
    return Context(run_id=1, node_id=5, state=RecordDict(), run_config={"task": task.to_json()},
                   node_config={"partner": "acme", "dataset": "caravan",
                                "data-path": str(data_path)})


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_partitions(["a", "b"], tmp_path_factory.mktemp("client"))[1]


def test_train_reports_and_stops_at_the_declared_rounds(data_path: Path) -> None:
    task = task_with(rounds=1, local_epochs=1)
    ctx = context(task, data_path)
    reply = client_app.train(message(task, MessageType.TRAIN), ctx)
    assert not reply.has_error()
    report = PrivacyReport.model_validate(dict(reply.content.config_records[PRIVACY_KEY]))
    assert report.partner == "acme" and report.epsilon > 0
    assert reply.content.metric_records["metrics"]["num-examples"] % 10 == 0
    again = client_app.train(message(task, MessageType.TRAIN), ctx)
    assert again.has_error()
    assert again.error.reason == "partner 'acme' already trained the 1 rounds this run declares"
    assert len(client_app._history(ctx)) == 1


def test_a_failed_training_still_counts_and_says_nothing(
        data_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("row 17 has income 123456.78")  # what an error could quote

    monkeypatch.setattr(dp_sgd, "train", broken)
    task = task_with(rounds=3, local_epochs=1)
    ctx = context(task, data_path)
    reply = client_app.train(message(task, MessageType.TRAIN), ctx)
    assert reply.has_error()
    assert reply.error.reason == "client error (RuntimeError); details are in the partner's logs"
    [counted] = client_app._history(ctx)  # the round's budget is spent, and on record
    assert counted == dp_sgd.plan(task, len(load_local_data(data_path, task).y_train))


def test_evaluate_rounds_metrics_and_answers_once_per_round(data_path: Path) -> None:
    task = task_with(rounds=2)
    ctx = context(task, data_path)
    for _ in range(2):
        reply = client_app.evaluate(message(task, MessageType.EVALUATE), ctx)
        metrics = reply.content.metric_records["metrics"]
        assert set(metrics) == {"num-examples", "loss", "accuracy", "auc"}
        assert metrics["num-examples"] % 10 == 0
        for key in ("loss", "accuracy", "auc"):
            assert metrics[key] == round(metrics[key], 3)
    refused = client_app.evaluate(message(task, MessageType.EVALUATE), ctx)
    assert refused.error.reason == "partner 'acme' already evaluated the 2 rounds this run declares"


def test_wrong_dataset_and_bad_data_are_named(tmp_path: Path, data_path: Path) -> None:
    task = task_with(dataset="claims")
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, data_path))
    assert reply.error.reason == "task asks for dataset 'claims'; partner 'acme' holds 'caravan'"
    task = task_with()
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("\n".join(data_path.read_text().splitlines()[:30]) + "\n")  # 29 rows
    reply = client_app.evaluate(message(task, MessageType.EVALUATE), context(task, tiny))
    assert reply.error.reason == ("table: has too few rows for a holdout of at least 10 rows "
                                  "and a training split")
