"""The Flower ClientApp a partner's SuperNode runs: local DP-SGD, holdout evaluation.

Everything that leaves the partner is in the reply: DP-trained weights, a rounded example
count, the privacy report (mechanism parameters and epsilon), rounded holdout aggregates,
or an error reason. Reasons of the project's own errors name a field or column and never
quote data; any other exception leaves only as its type name (details stay in local logs).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import cast

import numpy as np
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
from pydantic import TypeAdapter

from sangsaeng.shared.accounting import PRIVACY_KEY, Mechanism, PrivacyReport, epsilon
from sangsaeng.shared.metrics import roc_auc, rounded_count
from sangsaeng.shared.models import build_model
from sangsaeng.shared.preprocess import DataValidationError
from sangsaeng.shared.task import TaskSpec, TaskSpecError

from . import dp_sgd
from .data import LocalData, load_local_data
from .partner import PartnerConfig, PartnerConfigError

log = logging.getLogger(__name__)

# In context.state: stays on the SuperNode and is kept across the rounds of a run.
HISTORY_KEY = "privacy-history"
EVALUATIONS_KEY = "evaluations"
_HISTORY = TypeAdapter(list[Mechanism])
METRIC_DIGITS = 3  # holdout metrics leave rounded


class TaskRefused(ValueError):
    """The partner will not do what the message asks (the reason names the limit)."""


Handler = Callable[[Message, Context], Message]


def _errors_as_replies(handler: Handler) -> Handler:
    """Turn exceptions into error replies whose reason is safe to send. Replying (rather
    than raising) also makes Flower keep the updated context.state, so a round that was
    counted in the history before training stays counted if training fails."""

    @functools.wraps(handler)
    def wrapped(msg: Message, context: Context) -> Message:
        try:
            return handler(msg, context)
        except (TaskSpecError, PartnerConfigError, DataValidationError, TaskRefused) as err:
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
    task, partner, data = _setup(context)
    model = _global_model(msg, task)
    history = _history(context)
    if len(history) >= task.rounds:
        raise TaskRefused(f"partner '{partner.partner}' already trained the {task.rounds} "
                          "rounds this run declares")
    planned = dp_sgd.plan(task, len(data.y_train))
    # Count the round before training: a failure may waste budget but never hides it.
    history.append(planned)
    _save_history(context, history)
    dp_sgd.train(model, data.x_train, data.y_train, task, planned)
    report = PrivacyReport(
        partner=partner.partner, dataset=partner.dataset,
        noise_multiplier=planned.noise_multiplier, sample_rate=planned.sample_rate,
        steps=planned.steps, delta=task.dp.delta,
        # epsilon of this dataset in this run, from the accountant over its full history
        epsilon=epsilon(history, task.dp.delta),
    )
    return Message(RecordDict({
        "arrays": ArrayRecord(model.state_dict()),
        "metrics": MetricRecord({"num-examples": rounded_count(len(data.y_train))}),
        PRIVACY_KEY: ConfigRecord(report.model_dump()),
    }), reply_to=msg)


@app.evaluate()
@_errors_as_replies
def evaluate(msg: Message, context: Context) -> Message:
    task, partner, data = _setup(context)
    # Each evaluation answers a query about the holdout rows: at most one per round.
    record = context.state.config_records.get(EVALUATIONS_KEY)
    done = 0 if record is None else cast(int, record["count"])
    if done >= task.rounds:
        raise TaskRefused(f"partner '{partner.partner}' already evaluated the {task.rounds} "
                          "rounds this run declares")
    context.state[EVALUATIONS_KEY] = ConfigRecord({"count": done + 1})
    model = _global_model(msg, task)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x_holdout))
        labels = torch.from_numpy(data.y_holdout)
        loss = torch.nn.functional.cross_entropy(logits, labels).item()
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
        positive = torch.softmax(logits, dim=1)[:, -1].numpy()
    metrics = {"loss": loss, "accuracy": accuracy}
    if len(task.target.classes) == 2:  # AUC of the last declared class against the rest
        auc = roc_auc(positive, (data.y_holdout == 1).astype(np.int64))
        if auc is not None:
            metrics["auc"] = auc
    rounded = {key: round(value, METRIC_DIGITS) for key, value in metrics.items()}
    return Message(RecordDict({"metrics": MetricRecord({
        "num-examples": rounded_count(len(labels)), **rounded})}), reply_to=msg)


def _setup(context: Context) -> tuple[TaskSpec, PartnerConfig, LocalData]:
    task = TaskSpec.from_run_config(dict(context.run_config))
    partner = PartnerConfig.from_node_config(dict(context.node_config))
    if task.dataset != partner.dataset:
        raise PartnerConfigError(
            f"task asks for dataset '{task.dataset}'; partner '{partner.partner}' "
            f"holds '{partner.dataset}'"
        )
    return task, partner, load_local_data(partner.data_path, task)


def _global_model(msg: Message, task: TaskSpec) -> torch.nn.Module:
    model = build_model(task)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    return model


def _history(context: Context) -> list[Mechanism]:
    record = context.state.config_records.get(HISTORY_KEY)
    return [] if record is None else _HISTORY.validate_json(str(record["json"]))


def _save_history(context: Context, history: list[Mechanism]) -> None:
    context.state[HISTORY_KEY] = ConfigRecord({"json": _HISTORY.dump_json(history).decode()})
