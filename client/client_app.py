"""The Flower ClientApp a partner's SuperNode runs: local DP-SGD, holdout evaluation.

Everything that leaves the partner is in the reply: DP-trained weights, a rounded example
count, the privacy report (mechanism parameters and epsilon), the holdout's loss, accuracy
and count as a Gaussian release reserved with the round (client/evaluation.py), or an
error reason. Reasons of the project's own errors name a field or column and never
quote data; any other exception leaves only as its type name (details stay in local logs).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import cast

import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode

from sangsaeng.shared import wire
from sangsaeng.shared.accounting import Mechanism, PrivacyReport
from sangsaeng.shared.models import WeightsMismatch, build_model, check_fits, to_safetensors
from sangsaeng.shared.preprocess import DataValidationError, parameter_count
from sangsaeng.shared.task import TaskSpec, TaskSpecError
from sangsaeng.shared.wire import BASE_ROUND

from . import dp_sgd, evaluation
from .data import LocalData, load_local_data
from .ledger import Entry, Ledger, LedgerMismatch, LedgerMissing, open_ledger
from .policy import (
    DatasetPolicy,
    PartnerPolicy,
    PolicyError,
    TaskRefused,
    check_mechanism,
    check_task,
)

log = logging.getLogger(__name__)

# In context.state: stays on the SuperNode and is kept across the rounds of a run.
PLAN_KEY = "dp-plan"
# A live run's next train message comes within 4 round timeouts (node wait and replies, for
# training and for evaluation); after that its unreserved rounds stop being promised.
_PLAN_ROUNDS_OF_TIMEOUT = 4


Handler = Callable[[Message, Context], Message]


def _errors_as_replies(handler: Handler) -> Handler:
    """Turn exceptions into error replies whose reason is safe to send (the partner's
    own log keeps the details of anything unexpected)."""

    @functools.wraps(handler)
    def wrapped(msg: Message, context: Context) -> Message:
        try:
            return handler(msg, context)
        except (TaskSpecError, PolicyError, DataValidationError, TaskRefused,
                dp_sgd.PlanError) as err:
            reason = str(err)  # written to name fields and columns, never values
        except Exception as err:
            log.exception("ClientApp failed")  # the full story stays in the partner's logs
            reason = f"client error ({type(err).__name__}); details are in the partner's logs"
        return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                       reply_to=msg)

    return wrapped


app = ClientApp()


@app.train()
@_errors_as_replies
def train(msg: Message, context: Context) -> Message:
    task, policy, rules = _checked_task(context)
    planned = _plan(task, rules, context)
    check_mechanism(policy, rules, planned)
    round_ = _server_round(msg)
    if round_ == BASE_ROUND:
        raise TaskRefused(f"partner '{policy.partner}' trains rounds from 1 on; round "
                          f"{BASE_ROUND} is the base model's evaluation")
    with _ledger(policy, task.dataset) as ledger:
        first = ledger.training_rounds(str(context.run_id)) == 0
    # the run's first round here must start from the task's start: no other weights
    model = _global_model(msg, task, policy, start=first)
    data = _local_data(task, policy, rules)
    with _ledger(policy, task.dataset) as ledger:
        # Durably reserved before training: a failure may waste budget, never hide it.
        reserve = _reserve(ledger, task, policy, rules, context, round_, planned)
        dp_sgd.train(model, data.x_train, data.y_train, task, planned, round_=round_,
                     batch_size=dp_sgd.expected_batch_size(task, planned,
                                                           rules.public_train_rows))
        commit = ledger.commit(reserve)  # the update goes to Flower for sending right after
        report = _report(ledger, task, policy, rules, context, reserve, commit)
    return Message(RecordDict({
        wire.ARRAYS: ArrayRecord(model.state_dict()),
        # the FedAvg weight: the public size, never the exact count
        wire.METRICS: MetricRecord({wire.NUM_EXAMPLES: rules.public_train_rows}),
        wire.PRIVACY: ConfigRecord(report.model_dump()),
    }), reply_to=msg)


def _reserve(ledger: Ledger, task: TaskSpec, policy: PartnerPolicy, rules: DatasetPolicy,
             context: Context, round_: int, planned: Mechanism) -> Entry:
    return ledger.reserve(
        run_id=str(context.run_id), round_=round_, planned=planned,
        evaluation=task.dp.evaluation_noise_multiplier, run_rounds=task.rounds,
        delta=rules.delta, cap=rules.epsilon_cap, task_sha256=task.sha256(),
        partner=policy.partner,
        plan_seconds=min(_PLAN_ROUNDS_OF_TIMEOUT * task.round_timeout,
                         rules.max_promise_seconds))


def _report(ledger: Ledger, task: TaskSpec, policy: PartnerPolicy, rules: DatasetPolicy,
            context: Context, reserve: Entry, commit: Entry) -> PrivacyReport:
    """The privacy report of a committed reserve. Epsilon is recomputed by the accountant
    from the ledger's history up to this commit (a concurrent run's later reserve is not
    in it): auditors recompute exactly these."""
    spent = ledger.spending(rules.delta, upto=commit.seq)
    training = reserve.mechanism()
    return PrivacyReport(
        partner=policy.partner, dataset=task.dataset,
        noise_multiplier=training.noise_multiplier, sample_rate=training.sample_rate,
        steps=training.steps, delta=rules.delta,
        evaluation_noise_multiplier=task.dp.evaluation_noise_multiplier,
        trained_parameters=parameter_count(task),
        epsilon=spent.runs[str(context.run_id)], lifetime_epsilon=spent.lifetime,
        epsilon_cap=rules.epsilon_cap,
        ledger_seq=commit.seq, ledger_hash=commit.hash,  # an anchor outside the ledger
    )


def _plan(task: TaskSpec, rules: DatasetPolicy, context: Context) -> Mechanism:
    """dp_sgd.plan within the policy's limits, once per run, dataset size (the public one:
    q and the steps never reveal the exact count) and limits: every round of a run plans
    the same mechanism, and with a target epsilon the search for sigma takes about half a
    second (a few seconds when the planner also picks the batch)."""
    n_train = rules.public_train_rows
    limits = dp_sgd.PlanLimits(max_sample_rate=rules.max_sample_rate,
                               max_local_epochs=rules.max_local_epochs)
    key = f"{task.sha256()}/{n_train}/{limits.model_dump_json()}"
    record = context.state.config_records.get(PLAN_KEY)
    if record is not None and record["key"] == key:
        return Mechanism.model_validate({k: v for k, v in record.items() if k != "key"})
    planned = dp_sgd.plan(task, n_train, limits)
    context.state[PLAN_KEY] = ConfigRecord({"key": key, **planned.model_dump()})
    return planned


@app.evaluate()
@_errors_as_replies
def evaluate(msg: Message, context: Context) -> Message:
    """The holdout metrics of the weights the message carries, as a Gaussian release:
    for a training round, the one reserved with it, once (a partner that did not reserve
    the round answers nothing); for round 0, the base model's evaluation before training,
    reserved here with the whole run's plan. Recorded in the ledger before it leaves."""
    task, policy, rules = _checked_task(context)
    round_ = _server_round(msg)
    base = round_ == BASE_ROUND
    if base and task.base_model is None:
        raise TaskRefused(f"partner '{policy.partner}' evaluates a base model only for a "
                          "task that names one")
    if base:
        planned = _plan(task, rules, context)
        check_mechanism(policy, rules, planned)
    model = _global_model(msg, task, policy, start=base)
    data = _local_data(task, policy, rules)
    report = None
    with _ledger(policy, task.dataset) as ledger:
        if base:
            reserve = _reserve(ledger, task, policy, rules, context, round_, planned)
        reserve = ledger.evaluate(run_id=str(context.run_id), round_=round_,
                                  partner=policy.partner)
        assert reserve.evaluation_noise_multiplier is not None  # ledger.evaluate checks it
        n_classes = len(task.target.classes)
        released = evaluation.release(
            evaluation.holdout_sums(model, data.x_holdout, data.y_holdout, n_classes),
            n_classes, reserve.evaluation_noise_multiplier)
        if base:  # its own reserve: committed and reported like a training round's
            report = _report(ledger, task, policy, rules, context, reserve,
                             ledger.commit(reserve))
    records = RecordDict({wire.METRICS: MetricRecord({
        wire.NUM_EXAMPLES: round(released["count"]),
        "loss": released["loss"], "accuracy": released["accuracy"]})})
    if report is not None:
        records[wire.PRIVACY] = ConfigRecord(report.model_dump())
    return Message(records, reply_to=msg)


def _checked_task(context: Context) -> tuple[TaskSpec, PartnerPolicy, DatasetPolicy]:
    """The task, checked against the partner's policy: before any data is read."""
    task = TaskSpec.from_run_config(dict(context.run_config))
    policy = PartnerPolicy.from_node_config(dict(context.node_config))
    return task, policy, check_task(policy, task)


def _local_data(task: TaskSpec, policy: PartnerPolicy, rules: DatasetPolicy) -> LocalData:
    """The data, once every check that needs none has passed, split by the partner's
    secret holdout key (kept in the dataset's ledger)."""
    with _ledger(policy, task.dataset) as ledger:
        key = ledger.identity().holdout_key
    return load_local_data(rules.data_path, task, key, rules.holdout_fraction,
                           policy.cache_path())


def _ledger(policy: PartnerPolicy, dataset: str) -> Ledger:
    """The dataset's ledger; never made here (`sangsaeng client ledger init` does), so a
    lost ledger stops the dataset instead of restarting its budget."""
    try:
        return open_ledger(policy, dataset)
    except LedgerMissing:
        raise TaskRefused(f"partner '{policy.partner}' has no privacy ledger for dataset "
                          f"'{dataset}' (its operator runs `sangsaeng client ledger init`)"
                          ) from None
    except LedgerMismatch:
        raise TaskRefused(f"partner '{policy.partner}' refuses: its ledger for dataset "
                          f"'{dataset}' belongs to another data file") from None


def _server_round(msg: Message) -> int:
    return int(cast(int, msg.content.config_records[wire.CONFIG][wire.SERVER_ROUND]))


def _global_model(msg: Message, task: TaskSpec, policy: PartnerPolicy, start: bool
                  ) -> torch.nn.Module:
    """The model the message carries, if it fits the task's architecture (non-finite or
    huge weights are refused: they defeat clipping, and nothing honest sends them). With
    `start` (the base model's evaluation, and the run's first training round at this
    partner) the weights must be the task's start: its base model, which the policy
    accepted, or else the seeded initialisation — so a coordinator cannot have a partner
    train weights the policy never saw."""
    state = msg.content.array_records[wire.ARRAYS].to_torch_state_dict()
    try:
        check_fits(task, state)
    except WeightsMismatch as err:
        raise TaskRefused(f"partner '{policy.partner}' refuses the model it was sent: "
                          f"{err}") from None
    if start and _sha256(state) != (task.base_model or _sha256(
            build_model(task, seed=task.seed).state_dict())):
        what = "base model" if task.base_model else "seeded initialisation"
        raise TaskRefused(f"partner '{policy.partner}' refuses: the model it was sent is "
                          f"not the task's {what}")
    model = build_model(task)
    model.load_state_dict(state)
    return model


def _sha256(state: dict[str, torch.Tensor]) -> str:
    return hashlib.sha256(to_safetensors(state)).hexdigest()
