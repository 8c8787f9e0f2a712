"""FedAvg that never waits forever, records every round and privacy report in the store, and
moves the global model by the task's server optimizer (post-processing of the average)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import cast

from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    MetricRecordValues,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from pydantic import ValidationError

from sangsaeng.server import settings
from sangsaeng.server.db import Store
from sangsaeng.shared import wire
from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.task import TaskSpec

from .server_optimizer import ServerOptimizer

NODE_POLL_SECONDS = 0.5
# A run's first messages go out once no further partner has connected for this long (after
# the task's minimum): partners that start together all take part from the start, and a
# partner joins a run only at its start (client_app: it trains only from the start's weights).
SETTLE_SECONDS = 3.0


class RunFailed(RuntimeError):
    """The run cannot go on; the message says why (and is stored as the run's reason)."""


class RecordingFedAvg(FedAvg):
    """FedAvg over every connected partner node, with the task's minimum and timeout; the
    next global model is the task's server optimizer's step from the current one towards
    the partners' weighted average (with the default, the average itself: FedAvg).

    `latest_arrays` is the last global model, kept so a run that fails later can still
    store what its partners paid budget for.
    """

    def __init__(self, task: TaskSpec, store: Store, run_id: int) -> None:
        super().__init__(min_train_nodes=task.min_nodes, min_evaluate_nodes=task.min_nodes,
                         min_available_nodes=task.min_nodes, weighted_by_key=wire.NUM_EXAMPLES,
                         arrayrecord_key=wire.ARRAYS, configrecord_key=wire.CONFIG)
        self.task, self.store, self.run_id = task, store, run_id
        self.latest_arrays: ArrayRecord | None = None
        self.optimizer = ServerOptimizer(task.server_optimizer)
        self.current_arrays: ArrayRecord | None = None  # what this round's partners were sent
        self.trained_nodes: set[int] = set()  # whose update the last round used
        self.authenticated = settings.nodes_authenticated()

    # Flower's own sampling (strategy_utils.sample_nodes) waits for nodes without a
    # deadline; every round here asks all connected nodes, after a bounded wait.
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        first = server_round == 1 and self.task.base_model is None
        self.current_arrays = arrays
        return self._messages(server_round, arrays, config, grid, MessageType.TRAIN, first)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """Only the partners whose update this round used: each reserved the round's
        evaluation release with its training; any other would refuse."""
        return self._construct_messages(self._content(server_round, arrays, config),
                                        self._admitted(sorted(self.trained_nodes)),
                                        MessageType.EVALUATE)

    def evaluate_base(self, grid: Grid, arrays: ArrayRecord) -> None:
        """Round 0, before training: every connected partner evaluates the startup's base
        model on its holdout, a DP release it reserves with the whole run's plan and
        reports like a round. The receipt's "before" (the last round is its "after")."""
        messages = self._messages(wire.BASE_ROUND, arrays, ConfigRecord(), grid,
                                  MessageType.EVALUATE, first=True)
        replies = grid.send_and_receive(messages, timeout=self.task.round_timeout)
        replied, failed = self._check_and_log_replies(replies, is_train=False, validate=False)
        ok, reports, refused = self._reports(replied, base=True)
        self.store.privacy.add(self.run_id, wire.BASE_ROUND, reports)
        errors = sorted({_reason(m) for m in failed} | set(refused))
        metrics = _weighted_mean([m.content.metric_records[wire.METRICS] for m in ok])
        self.store.runs.record_round(self.run_id, wire.BASE_ROUND, evaluated_nodes=len(ok),
                                     metrics=metrics, partner_errors=errors)
        if len(ok) < self.task.min_nodes:
            raise RunFailed(_too_few("base model evaluation", wire.BASE_ROUND, len(ok),
                                     self.task.min_nodes, errors))

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replied, failed = self._check_and_log_replies(replies, is_train=True, validate=False)
        ok, reports, refused = self._reports(replied)
        # Record every privacy report that arrived, even if this round then fails:
        # those partners spent budget whether or not the update is used.
        self.store.privacy.add(self.run_id, server_round, reports)
        errors = sorted({_reason(m) for m in failed} | set(refused))
        self.store.runs.record_round(self.run_id, server_round, trained_nodes=len(ok),
                                     partner_errors=errors)
        if len(ok) < self.task.min_nodes:
            raise RunFailed(_too_few("training", server_round, len(ok), self.task.min_nodes,
                                     errors))
        arrays, metrics = super().aggregate_train(server_round, ok)
        if arrays is not None and self.current_arrays is not None:
            arrays = next_global(self.optimizer, self.current_arrays, arrays)
        self.latest_arrays = arrays
        self.trained_nodes = {msg.metadata.src_node_id for msg in ok}
        return arrays, metrics

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        ok, failed = self._check_and_log_replies(replies, is_train=False, validate=False)
        errors = sorted({_reason(m) for m in failed})
        if len(ok) < self.task.min_nodes:
            raise RunFailed(_too_few("evaluation", server_round, len(ok), self.task.min_nodes,
                                     errors))
        metrics = _weighted_mean([m.content.metric_records[wire.METRICS] for m in ok])
        self.store.runs.record_round(self.run_id, server_round, evaluated_nodes=len(ok),
                                     metrics=metrics, partner_errors=errors)
        return MetricRecord(metrics)

    def _reports(self, replied: list[Message], base: bool = False
                 ) -> tuple[list[Message], list[tuple[int, PrivacyReport]], list[str]]:
        """(replies to use, privacy reports to record, why others were refused). A report is
        recorded under the partner whose node key the SuperLink authenticated, never the
        name a node gives itself; a reply that names another partner is recorded (its
        budget is spent) but not used. Without its privacy report (or, for the base
        model's evaluation, with training steps in it) a reply is never used."""
        ok, reports, refused = [], [], []
        for msg in replied:
            report = _privacy_report(msg)
            node = msg.metadata.src_node_id
            if report is None or (base and report.steps != 0):
                refused.append(_reason(msg))
                continue
            partner, removed = self._partner_of(node, report)
            if partner is None:  # no registered partner: nothing may be recorded or used
                refused.append("a reply from a node no registered partner holds")
                continue
            reports.append((node, report.model_copy(update={"partner": partner})))
            if removed:
                refused.append(f"partner '{partner}' was removed during the round")
            elif partner != report.partner:
                refused.append(f"the node of partner '{partner}' reported itself as "
                               f"'{report.partner}'")
            else:
                ok.append(msg)
        return ok, reports, refused

    def _partner_of(self, node_id: int, report: PrivacyReport) -> tuple[str | None, bool]:
        """(the partner the node's key belongs to, whether it has been removed)."""
        if not self.authenticated:
            return report.partner, False
        partner = self.store.partners.by_node_id(node_id)
        if partner is None:
            return None, False
        return partner.name, partner.removed_at is not None

    def _admitted(self, nodes: list[int]) -> list[int]:
        """The nodes of partners not removed (a removed partner's node may still be
        connected for a moment): only they receive the global model."""
        if not self.authenticated:
            return nodes
        active = {p.node_id for p in self.store.partners.list() if p.removed_at is None}
        return [n for n in nodes if str(n) in active]

    def _messages(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                  grid: Grid, message_type: str, first: bool = False) -> Iterable[Message]:
        deadline = time.monotonic() + self.task.round_timeout
        while len(nodes := self._admitted(list(grid.get_node_ids()))) < self.task.min_nodes:
            if time.monotonic() > deadline:
                raise RunFailed(
                    f"round {server_round}: only {len(nodes)} of the {self.task.min_nodes} "
                    f"partner nodes the task needs connected within {self.task.round_timeout:g} s"
                )
            time.sleep(NODE_POLL_SECONDS)
        settled = time.monotonic() + SETTLE_SECONDS
        while first and time.monotonic() < min(settled, deadline):
            time.sleep(NODE_POLL_SECONDS)
            if len(more := self._admitted(list(grid.get_node_ids()))) > len(nodes):
                nodes, settled = more, time.monotonic() + SETTLE_SECONDS
        return self._construct_messages(self._content(server_round, arrays, config), nodes,
                                        message_type)

    def _content(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord
                 ) -> RecordDict:
        config[wire.SERVER_ROUND] = server_round
        return RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})


def next_global(optimizer: ServerOptimizer, current: ArrayRecord, averaged: ArrayRecord
                ) -> ArrayRecord:
    """The server optimizer's step on Flower's records (FedAvg's average is returned as it
    is when the optimizer is FedAvg itself)."""
    if optimizer.spec.is_fedavg:
        return averaged
    new = optimizer.step({k: a.numpy() for k, a in current.items()},
                         {k: a.numpy() for k, a in averaged.items()})
    return ArrayRecord({k: Array(v) for k, v in new.items()})


def _privacy_report(msg: Message) -> PrivacyReport | None:
    """The reply's privacy report; None if it is missing or malformed (reply not used)."""
    record = msg.content.config_records.get(wire.PRIVACY)
    try:
        return PrivacyReport.model_validate(dict(record)) if record is not None else None
    except ValidationError:
        return None


def _too_few(phase: str, server_round: int, n_ok: int, needed: int,
             errors: list[str]) -> str:
    reasons = "; ".join(errors)
    text = f"round {server_round}: {n_ok} of the {needed} partner {phase} replies needed arrived"
    return text + (f"; partner errors: {reasons}" if reasons else " (timed out)")


def _reason(msg: Message) -> str:
    if not msg.has_error():
        return "a reply without the valid privacy report it needs"
    return msg.error.reason or "unknown error"


def _weighted_mean(records: list[MetricRecord]) -> dict[str, MetricRecordValues]:
    """Example-weighted mean of each metric over the partners that report it (FedAvg's own
    aggregate_metricrecords needs every key in every reply; AUC is undefined for a
    partner whose holdout has one class)."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for record in records:
        w = float(cast(float, record[wire.NUM_EXAMPLES]))
        for key, value in record.items():
            if (key != wire.NUM_EXAMPLES and isinstance(value, (int, float))
                    and math.isfinite(value)):
                sums[key] = sums.get(key, 0.0) + w * value
                weights[key] = weights.get(key, 0.0) + w
    return {key: sums[key] / weights[key] for key in sums}
