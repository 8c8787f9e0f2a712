"""The Flower ClientApp a partner's SuperNode runs: local DP-SGD, holdout evaluation.

Everything that leaves the partner is in the reply: DP-trained weights, a rounded example
count, the privacy report (mechanism parameters and epsilon), and holdout aggregates.
Exceptions become Flower error replies whose text reaches the server, so every error
raised on this path names a field or column and never quotes data.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from pydantic import TypeAdapter

from sangsaeng.shared.accounting import PRIVACY_KEY, Mechanism, PrivacyReport, epsilon
from sangsaeng.shared.metrics import roc_auc, rounded_count
from sangsaeng.shared.models import build_model
from sangsaeng.shared.task import TaskSpec

from . import dp_sgd
from .data import LocalData, load_local_data
from .partner import PartnerConfig, PartnerConfigError

HISTORY_KEY = "privacy-history"  # in context.state: stays on the SuperNode, kept across rounds
_HISTORY = TypeAdapter(list[Mechanism])

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    task, partner, data = _setup(context)
    model = _global_model(msg, task)
    history = _history(context)
    planned = dp_sgd.plan(task, len(data.y_train))
    done = dp_sgd.train(model, data.x_train, data.y_train, task, planned)
    history.append(done)
    _save_history(context, history)
    report = PrivacyReport(
        partner=partner.partner, dataset=partner.dataset, noise_multiplier=done.noise_multiplier,
        sample_rate=done.sample_rate, steps=done.steps, delta=task.dp.delta,
        # epsilon of this dataset in this run, from the accountant over its full history
        epsilon=epsilon(history, task.dp.delta),
    )
    return Message(RecordDict({
        "arrays": ArrayRecord(model.state_dict()),
        "metrics": MetricRecord({"num-examples": rounded_count(len(data.y_train))}),
        PRIVACY_KEY: ConfigRecord(report.model_dump()),
    }), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    task, partner, data = _setup(context)
    model = _global_model(msg, task)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x_holdout))
        labels = torch.from_numpy(data.y_holdout)
        loss = torch.nn.functional.cross_entropy(logits, labels).item()
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
        positive = torch.softmax(logits, dim=1)[:, -1].numpy()
    metrics = {"num-examples": rounded_count(len(labels)), "loss": loss, "accuracy": accuracy}
    if len(task.target.classes) == 2:  # AUC of the last declared class against the rest
        auc = roc_auc(positive, (data.y_holdout == 1).astype(np.int64))
        if auc is not None:
            metrics["auc"] = auc
    return Message(RecordDict({
        "metrics": MetricRecord(metrics),
        "partner": ConfigRecord({"partner": partner.partner}),
    }), reply_to=msg)


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
