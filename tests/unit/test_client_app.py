"""The ClientApp's handlers, called directly with Flower Messages and a Context."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import cast

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from sangsaeng.client import client_app, dp_sgd
from sangsaeng.client.ledger import COMMIT, EVALUATE, RESERVE, Ledger, LedgerExists, init_ledger
from sangsaeng.client.policy import PartnerPolicy, PolicyError
from sangsaeng.demo.data import write_partitions
from sangsaeng.shared.accounting import (
    Mechanism,
    PrivacyReport,
    epsilon,
    gaussian,
    noise_for_target,
)
from sangsaeng.shared.models import build_model, to_safetensors
from sangsaeng.shared.task import TaskSpec
from sangsaeng.shared.wire import PRIVACY

from ..support.cli import sangsaeng
from ..support.tasks import caravan_policy, task_with

pytestmark = pytest.mark.usefixtures("flower_task_identity")


def message(task: TaskSpec, kind: str, server_round: int = 1) -> Message:
    start = build_model(task, seed=task.seed).state_dict()  # the run's start
    return Message(RecordDict({"arrays": ArrayRecord(start),
                               "config": ConfigRecord({"server-round": server_round})}),
                   dst_node_id=5, message_type=kind)


def context(task: TaskSpec, policy: Path, run_id: int = 1) -> Context:
    return Context(run_id=run_id, node_id=5, state=RecordDict(), node_config={
        "policy": str(policy)}, run_config={"task": task.to_json()})


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_partitions(["a", "b"], tmp_path_factory.mktemp("client"))[1]


@pytest.fixture
def policy(tmp_path: Path, data_path: Path) -> Path:
    return caravan_policy(tmp_path, "acme", data_path)


def ledger_of(policy: Path) -> Ledger:
    return Ledger(PartnerPolicy.load(policy).ledger_path("caravan"))


def test_train_reserves_commits_reports_and_stops_at_the_declared_rounds(policy: Path) -> None:
    task = task_with(rounds=1, local_epochs=1)
    ctx = context(task, policy)
    reply = client_app.train(message(task, MessageType.TRAIN), ctx)
    assert not reply.has_error(), reply.error.reason
    report = PrivacyReport.model_validate(dict(reply.content.config_records[PRIVACY]))
    assert report.partner == "acme" and report.epsilon == report.lifetime_epsilon > 0
    assert report.epsilon_cap == 100.0
    assert cast(int, reply.content.metric_records["metrics"]["num-examples"]) % 10 == 0
    with ledger_of(policy) as ledger:
        assert [(e.kind, e.run_id, e.round) for e in ledger.entries()] == [
            (RESERVE, "1", 1), (COMMIT, "1", 1)]
        assert ledger.spending(1e-5).lifetime == pytest.approx(report.lifetime_epsilon)
    again = client_app.train(message(task, MessageType.TRAIN, 2), ctx)
    assert again.error.reason == ("partner 'acme' refuses: round 2 is not a round of this "
                                  "1-round run")
    # another run on the same dataset continues from the lifetime spending
    second = client_app.train(message(task, MessageType.TRAIN), context(task, policy, run_id=2))
    later = PrivacyReport.model_validate(dict(second.content.config_records[PRIVACY]))
    assert later.epsilon == pytest.approx(report.epsilon)
    assert later.lifetime_epsilon > report.lifetime_epsilon


def test_a_run_plans_its_mechanism_once(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a target epsilon, sigma's search runs in the first round only: later rounds
    of the run read the same mechanism from the node's state."""
    searches: list[float] = []

    def counted(target: float, delta: float, sample_rate: float, steps: int,
                fixed: tuple[Mechanism, ...] = ()) -> float:
        searches.append(target)
        return noise_for_target(target, delta, sample_rate, steps, fixed)

    monkeypatch.setattr(dp_sgd, "noise_for_target", counted)
    task = task_with(dp={"noise_multiplier": None, "target_epsilon": 3.0}, rounds=2,
                     local_epochs=1)
    ctx = context(task, policy)
    reports = []
    for server_round in (1, 2):
        reply = client_app.train(message(task, MessageType.TRAIN, server_round), ctx)
        assert not reply.has_error(), reply.error.reason
        reports.append(PrivacyReport.model_validate(
            dict(reply.content.config_records[PRIVACY])))
    assert searches == [3.0]
    first, second = reports
    assert (first.noise_multiplier, first.sample_rate, first.steps) == (
        second.noise_multiplier, second.sample_rate, second.steps)
    assert second.epsilon <= 3.0  # the run's two rounds within the target
    # another run plans afresh
    client_app.train(message(task, MessageType.TRAIN), context(task, policy, run_id=2))
    assert searches == [3.0, 3.0]


def test_a_failed_training_still_counts_and_says_nothing(
        policy: Path, data_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("row 17 has income 123456.78")  # what an error could quote

    monkeypatch.setattr(dp_sgd, "train", broken)
    task = task_with(rounds=3, local_epochs=1)
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, policy))
    assert reply.error.reason == "client error (RuntimeError); details are in the partner's logs"
    with ledger_of(policy) as ledger:  # reserved, never committed: counted as spent
        [entry] = ledger.entries()
        assert entry.kind == RESERVE
        public = PartnerPolicy.load(policy).datasets["caravan"].public_train_rows
        assert entry.mechanism() == dp_sgd.plan(task, public)
        assert ledger.spending(1e-5).lifetime > 0


@pytest.mark.parametrize(("change", "reason"), [
    ({"dataset": "claims"}, "partner 'acme' holds no dataset 'claims'"),
    ({"features": [{"name": "customer_id", "min": 0, "max": 1e6}]},
     "partner 'acme' refuses: columns not in its declared schema: customer_id"),
    # issue 15, finding 3: a task must use exactly the declared ranges and categories
    ({"features": [{"name": "MAANTHUI", "min": 1, "max": 11}]},
     "partner 'acme' refuses: columns declared otherwise in its schema: MAANTHUI"),
    ({"features": [{"kind": "categorical", "name": "MOSHOOFD", "categories": [1, 2, 3]}]},
     "partner 'acme' refuses: columns declared otherwise in its schema: MOSHOOFD"),
    ({"target": {"name": "Purchase", "classes": ["Yes", "No"]}},
     "partner 'acme' refuses: columns declared otherwise in its schema: Purchase"),
    # issue 15, finding 8: the policy bounds the work a task asks for
    ({"model": {"kind": "mlp", "hidden": [4096, 4096]}},
     "partner 'acme' refuses: the model's 17342466 trained parameters exceed its maximum of "
     "1000000"),
    ({"local_epochs": 11}, "partner 'acme' refuses: 11 local epochs exceed its maximum of 10"),
    ({"dp": {"evaluation_noise_multiplier": 0.1}},
     "partner 'acme' refuses: evaluation noise multiplier 0.1 is below its minimum 0.5"),
    ({"rounds": 21}, "partner 'acme' refuses: 21 rounds exceed its maximum of 20 per run"),
    ({"dp": {"noise_multiplier": 0.3}},
     "partner 'acme' refuses: noise multiplier 0.3 is below its minimum 0.5"),
    ({"batch_size": 400}, "partner 'acme' refuses: sampling rate 0.167 is above its maximum 0.1"),
    ({"dp": {"delta": 1e-3}}, "partner 'acme' refuses: delta 0.001 is above its delta 1e-05"),
])
def test_policy_refusals_spend_nothing(policy: Path, change: dict[str, object],
                                       reason: str) -> None:
    task = task_with(**change)
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, policy))
    assert reply.has_error() and (reply.error.reason or "").startswith(reason), reply.error.reason
    with ledger_of(policy) as ledger:
        assert ledger.entries() == []


def test_a_plan_over_the_cap_is_refused_before_training(tmp_path: Path, data_path: Path) -> None:
    policy = caravan_policy(tmp_path, "frugal", data_path, cap=2.0)
    task = task_with(local_epochs=1)  # five rounds would reach 2.59, one stays under 2
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, policy))
    assert (reply.error.reason or "").startswith(
        "partner 'frugal' refuses: this run's plan would bring the dataset's lifetime epsilon "
        "to "), reply.error.reason
    assert (reply.error.reason or "").endswith("to 2.59, over its cap 2 (spent 0.00)")
    with ledger_of(policy) as ledger:
        assert ledger.entries() == []
    short = task_with(local_epochs=1, rounds=1)
    assert not client_app.train(message(short, MessageType.TRAIN), context(short, policy)
                                ).has_error()


def test_evaluation_is_a_release_reserved_with_its_round(policy: Path) -> None:
    """issue 15, finding 2: evaluate answered exact metrics of any weights, with no ledger
    entry, as often as a restarted node allowed. Now it answers only a round this run
    reserved (with its evaluation), once, recorded in the ledger before it leaves."""
    task = task_with(rounds=2, local_epochs=1)
    ctx = context(task, policy)
    refused = client_app.evaluate(message(task, MessageType.EVALUATE), ctx)
    assert refused.error.reason == ("partner 'acme' evaluates only rounds it reserved (with "
                                    "their evaluation) in this run; round 1 is not")
    with ledger_of(policy) as ledger:
        assert ledger.entries() == []
    assert not client_app.train(message(task, MessageType.TRAIN), ctx).has_error()
    reply = client_app.evaluate(message(task, MessageType.EVALUATE), ctx)
    metrics = reply.content.metric_records["metrics"]
    assert set(metrics) == {"num-examples", "loss", "accuracy"}
    assert 0 <= cast(float, metrics["accuracy"]) <= 1
    # a fresh context (a restarted node) changes nothing: the ledger remembers
    again = client_app.evaluate(message(task, MessageType.EVALUATE), context(task, policy))
    assert again.error.reason == "partner 'acme' already evaluated round 1 of this run"
    with ledger_of(policy) as ledger:
        kinds = [(e.kind, e.round) for e in ledger.entries()]
        assert kinds == [(RESERVE, 1), (COMMIT, 1), (EVALUATE, 1)]
        assert ledger.verify().ok
        [reserve] = [e for e in ledger.entries() if e.kind == RESERVE]
        assert reserve.evaluation_noise_multiplier == task.dp.evaluation_noise_multiplier
        assert ledger.history() == [reserve.mechanism(), gaussian(10.0)]


def with_weights(msg: Message, state: dict[str, torch.Tensor]) -> Message:
    msg.content.array_records["arrays"] = ArrayRecord(state)
    return msg


def test_the_base_model_is_evaluated_before_training_as_a_reserved_release(
        tmp_path: Path, data_path: Path) -> None:
    """Round 0, the receipt's "before": a DP release of the startup's base model's holdout
    metrics, reserved with the whole run's plan, committed and reported like a round."""
    base = build_model(task_with(), seed=3).state_dict()
    digest = hashlib.sha256(to_safetensors(base)).hexdigest()
    task = task_with(rounds=1, local_epochs=1, base_model=digest)
    policy = caravan_policy(tmp_path, "acme", data_path, base_models=(digest,))
    ctx = context(task, policy)
    reply = client_app.evaluate(with_weights(message(task, MessageType.EVALUATE, 0), base), ctx)
    assert not reply.has_error(), reply.error.reason
    assert set(reply.content.metric_records["metrics"]) == {"num-examples", "loss", "accuracy"}
    report = PrivacyReport.model_validate(dict(reply.content.config_records[PRIVACY]))
    assert report.steps == 0 and report.evaluation_noise_multiplier == 10.0
    assert report.epsilon == pytest.approx(epsilon([gaussian(10.0)], 1e-5))
    # the first round trains from the same base weights
    trained = client_app.train(with_weights(message(task, MessageType.TRAIN), base), ctx)
    assert not trained.has_error(), trained.error.reason
    with ledger_of(policy) as ledger:
        assert [(e.kind, e.round) for e in ledger.entries()] == [
            (RESERVE, 0), (EVALUATE, 0), (COMMIT, 0), (RESERVE, 1), (COMMIT, 1)]
        assert report.ledger_seq == 3 and ledger.verify().ok
    again = client_app.evaluate(with_weights(message(task, MessageType.EVALUATE, 0), base),
                                context(task, policy))
    assert again.error.reason == "partner 'acme' already reserved round 0 of this run"


def test_a_base_model_is_refused_unless_it_is_the_one_the_policy_accepts(
        tmp_path: Path, data_path: Path) -> None:
    base = build_model(task_with(), seed=3).state_dict()
    digest = hashlib.sha256(to_safetensors(base)).hexdigest()
    task = task_with(base_model=digest)
    other = build_model(task_with(), seed=4).state_dict()
    accepting = caravan_policy(tmp_path / "a", "acme", data_path, base_models=(digest,))
    refusing = caravan_policy(tmp_path / "b", "acme", data_path)
    cases = [
        (accepting, client_app.evaluate, MessageType.EVALUATE, 0, other,
         "partner 'acme' refuses: the model it was sent is not the task's base model"),
        (accepting, client_app.train, MessageType.TRAIN, 1, other,
         "partner 'acme' refuses: the model it was sent is not the task's base model"),
        (refusing, client_app.evaluate, MessageType.EVALUATE, 0, base,
         f"partner 'acme' refuses: base model {digest} is not among the base models its "
         "policy accepts"),
        (accepting, client_app.train, MessageType.TRAIN, 0, base,
         "partner 'acme' trains rounds from 1 on; round 0 is the base model's evaluation"),
    ]
    for policy, handler, kind, round_, state, reason in cases:
        reply = handler(with_weights(message(task, kind, round_), state), context(task, policy))
        assert reply.error.reason == reason
        with ledger_of(policy) as ledger:
            assert ledger.entries() == []
    # a task without a base model starts from its seeded initialisation, and nothing else
    plain = task_with(rounds=2)
    reply = client_app.train(with_weights(message(plain, MessageType.TRAIN), other),
                             context(plain, refusing))
    assert reply.error.reason == ("partner 'acme' refuses: the model it was sent is not the "
                                  "task's seeded initialisation")
    # ... also when the coordinator starts the run at its second round (review of issue 16)
    reply = client_app.train(with_weights(message(plain, MessageType.TRAIN, 2), other),
                             context(plain, refusing))
    assert reply.error.reason == ("partner 'acme' refuses: the model it was sent is not the "
                                  "task's seeded initialisation")
    for round_ in (-1, 3):  # rounds outside the run's plan are no rounds at all
        reply = client_app.train(message(plain, MessageType.TRAIN, round_),
                                 context(plain, refusing))
        assert reply.error.reason == (f"partner 'acme' refuses: round {round_} is not a "
                                      "round of this 2-round run")
    with ledger_of(refusing) as ledger:
        assert ledger.entries() == []
    plain = task_with()  # no base model: no receipt to give
    reply = client_app.evaluate(message(plain, MessageType.EVALUATE, 0),
                                context(plain, accepting))
    assert reply.error.reason == ("partner 'acme' evaluates a base model only for a task "
                                  "that names one")


def test_a_partner_at_its_cap_answers_no_evaluation(tmp_path: Path, data_path: Path) -> None:
    # one 1-epoch round spends ~1.33 (its evaluation included), a second would reach ~1.67
    policy = caravan_policy(tmp_path, "frugal", data_path, cap=1.5)
    task = task_with(local_epochs=1, rounds=1)
    assert not client_app.train(message(task, MessageType.TRAIN), context(task, policy)
                                ).has_error()
    over = task_with(local_epochs=1, rounds=1, seed=8)
    ctx = context(over, policy, run_id=2)
    assert client_app.train(message(over, MessageType.TRAIN), ctx).has_error()
    reply = client_app.evaluate(message(over, MessageType.EVALUATE), ctx)
    assert reply.has_error() and "evaluates only rounds it reserved" in (reply.error.reason or "")


def test_a_tiny_table_trains_and_a_missing_policy_is_named(tmp_path: Path,
                                                           data_path: Path) -> None:
    """issue 15, findings 3 and 5: "too few rows" answered before any budget was spent,
    and q = 1/n in the report gave the exact count; both depend on the public size now."""
    task = task_with(rounds=1, local_epochs=1, batch_size=1)
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("\n".join(data_path.read_text().splitlines()[:30]) + "\n")  # 29 rows
    replies = [client_app.train(message(task, MessageType.TRAIN), context(
        task, caravan_policy(tmp_path / name, name, path))) for name, path in (
            ("tiny", tiny), ("full", data_path))]
    reports = [PrivacyReport.model_validate(dict(r.content.config_records[PRIVACY]))
               for r in replies]
    # the tiny table's report is the one its public size (100 rows) plans: no trace of 29
    assert (reports[0].sample_rate, reports[0].steps) == (1 / 80, 80)
    full = PartnerPolicy.load(tmp_path / "full" / "full.policy.toml").datasets["caravan"]
    assert reports[1].sample_rate == 1 / full.public_train_rows
    assert replies[0].content.metric_records["metrics"]["num-examples"] == 80
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, tmp_path / "no.toml"))
    assert reply.error.reason == "the policy file named in node_config 'policy' does not exist"


@pytest.mark.parametrize("kind", [MessageType.TRAIN, MessageType.EVALUATE])
def test_non_finite_weights_are_refused_before_any_budget_is_spent(policy: Path,
                                                                  kind: str) -> None:
    """issue 15, finding 4: weights were never checked, and a NaN passes clamp."""
    task = task_with(rounds=1, local_epochs=1)
    state = build_model(task, seed=0).state_dict()
    state["0.weight"][0, 0] = float("nan")
    msg = Message(RecordDict({"arrays": ArrayRecord(state),
                              "config": ConfigRecord({"server-round": 1})}),
                  dst_node_id=5, message_type=kind)
    handler = client_app.train if kind == MessageType.TRAIN else client_app.evaluate
    reply = handler(msg, context(task, policy))
    assert reply.has_error()
    assert reply.error.reason == "partner 'acme' refuses the model it was sent: tensor " \
                                 "'0.weight' has non-finite values"
    with ledger_of(policy) as ledger:
        assert ledger.entries() == []


def test_a_lost_ledger_stops_the_dataset_instead_of_resetting_it(policy: Path) -> None:
    """issue 15, finding 7: training made a missing ledger, so removing the file restarted
    a dataset refused at its cap."""
    task = task_with(rounds=1, local_epochs=1)
    assert not client_app.train(message(task, MessageType.TRAIN), context(task, policy)
                                ).has_error()
    ledger_path = PartnerPolicy.load(policy).ledger_path("caravan")
    ledger_path.unlink()
    for suffix in ("-wal", "-shm"):
        ledger_path.with_name(ledger_path.name + suffix).unlink(missing_ok=True)
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, policy, run_id=2))
    assert reply.error.reason == ("partner 'acme' has no privacy ledger for dataset 'caravan' "
                                  "(its operator runs `sangsaeng client ledger init`)")
    assert not ledger_path.exists()


def test_one_data_file_has_one_budget(tmp_path: Path, data_path: Path) -> None:
    """issue 15, finding 7: two dataset entries on one data file had two caps."""
    policy_path = caravan_policy(tmp_path, "acme", data_path)
    text = policy_path.read_text()
    twice = text + text[text.index("[datasets.caravan]"):].replace("[datasets.caravan]",
                                                                   "[datasets.caravan2]")
    policy_path.write_text(twice)
    with pytest.raises(PolicyError, match="datasets 'caravan' and 'caravan2' name the same "
                                          "data file: one data file has one budget"):
        PartnerPolicy.load(policy_path)
    # renamed in the policy: the old ledger still holds the file's budget
    renamed_schema = tmp_path / "renamed.json"
    renamed_schema.write_text((tmp_path / "caravan.catalogue.json").read_text().replace(
        '"name": "caravan"', '"name": "renamed"'))
    policy_path.write_text(text.replace("[datasets.caravan]", "[datasets.renamed]").replace(
        str(tmp_path / "caravan.catalogue.json"), str(renamed_schema)))
    with pytest.raises(LedgerExists, match="already has its budget in .*caravan.ledger.sqlite"):
        init_ledger(PartnerPolicy.load(policy_path), "renamed")
    # and a ledger moved to another dataset's name is refused, not trusted
    renamed = PartnerPolicy.load(policy_path)
    (renamed.ledger_dir / "caravan.ledger.sqlite").rename(renamed.ledger_path("renamed"))
    task = task_with(dataset="renamed", rounds=1, local_epochs=1)
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, policy_path))
    assert reply.error.reason == ("partner 'acme' refuses: its ledger for dataset 'renamed' "
                                  "belongs to another data file")


def test_a_runs_promise_is_bounded_by_the_partners_policy(policy: Path) -> None:
    """issue 15, finding 6: a run's unreserved rounds stayed promised for 4 round timeouts
    (up to 4 days), even after the run stopped."""
    task = task_with(rounds=5, local_epochs=1, round_timeout=86400)
    before = dt.datetime.now(dt.UTC)
    assert not client_app.train(message(task, MessageType.TRAIN), context(task, policy)
                                ).has_error()
    with ledger_of(policy) as ledger:
        [reserve, _] = ledger.entries()
    assert reserve.plan_until is not None
    promised = dt.datetime.fromisoformat(reserve.plan_until) - before
    assert dt.timedelta(seconds=3500) < promised <= dt.timedelta(seconds=3600 + 60)


def test_ledger_init_from_the_cli(tmp_path: Path, data_path: Path) -> None:
    policy = caravan_policy(tmp_path, "acme", data_path, ledger=False)
    made = sangsaeng("client", "ledger", "init", "--policy", str(policy))
    assert made.returncode == 0 and "caravan: ledger made at" in made.stdout
    again = sangsaeng("client", "ledger", "init", "--policy", str(policy))
    assert again.returncode == 1 and "already has its ledger" in again.stdout + again.stderr
    assert sangsaeng("client", "ledger", "verify", "--policy", str(policy)).stdout.startswith(
        "caravan: ok (0 entries")


def test_a_planned_round_is_what_the_ledger_reserves_and_the_report_says(
        policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task that leaves batch and epochs to the planner: the partner plans within its
    policy's limits, reserves exactly that (σ, q, steps) and reports it; the step divides
    by the planned expected batch."""
    batches: list[float] = []
    real_train = dp_sgd.train

    def recorded(*args: object, batch_size: float | None = None, **kwargs: object) -> None:
        assert batch_size is not None
        batches.append(batch_size)
        real_train(*args, batch_size=batch_size, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dp_sgd, "train", recorded)
    task = task_with(batch_size=None, local_epochs=None, rounds=2,
                     dp={"noise_multiplier": None, "target_epsilon": 4.0})
    reply = client_app.train(message(task, MessageType.TRAIN), context(task, policy))
    assert not reply.has_error(), reply.error.reason
    rules = PartnerPolicy.load(policy).datasets["caravan"]
    limits = dp_sgd.PlanLimits(max_sample_rate=rules.max_sample_rate,
                               max_local_epochs=rules.max_local_epochs)
    planned = dp_sgd.plan(task, rules.public_train_rows, limits)
    assert planned != dp_sgd.plan(task, rules.public_train_rows)  # the policy's limits bind
    assert planned.sample_rate <= rules.max_sample_rate
    with ledger_of(policy) as ledger:
        assert ledger.entries()[0].mechanism() == planned
    report = PrivacyReport.model_validate(dict(reply.content.config_records[PRIVACY]))
    assert (report.noise_multiplier, report.sample_rate, report.steps) == (
        planned.noise_multiplier, planned.sample_rate, planned.steps)
    assert batches == [pytest.approx(planned.sample_rate * rules.public_train_rows)]
    assert report.epsilon <= 4.0
