"""Response bodies (shared/rest/) built from the store's rows: the only place the REST
contract meets the ORM."""

from __future__ import annotations

from sangsaeng.server.db.tables import PrivacyRecord, RoundResult, Run
from sangsaeng.shared.accounting import round_mechanisms, spending
from sangsaeng.shared.rest.audit import AuditRecord, AuditRun, DatasetSpend
from sangsaeng.shared.rest.runs import (
    MetricChange,
    ModelCard,
    PartnerPrivacy,
    PartnerSpend,
    Receipt,
    RoundOut,
    RunOut,
    RunSummary,
)
from sangsaeng.shared.task import TaskSpec
from sangsaeng.shared.wire import BASE_ROUND

CARD_NOTES = [
    "Trained by federated averaging of partners' DP-SGD updates (Poisson sampling, "
    "per-sample clipping, Gaussian noise, as Opacus' DPOptimizer); no row left any partner.",
    "Metrics are partners' holdout aggregates, weighted by rounded counts.",
    "ε is (ε, δ)-DP per partner dataset from a PLD accountant (dp_accounting) over every "
    "step; "
    "lifetime ε covers all runs on that dataset.",
]


def round_out(row: RoundResult, run: Run) -> RoundOut:
    return RoundOut(round=row.round, trained_nodes=row.trained_nodes,
                    evaluated_nodes=row.evaluated_nodes, metrics=row.metrics,
                    partner_errors=row.partner_errors,
                    privacy=[PartnerPrivacy.model_validate(r) for r in run.privacy_reports
                             if r.round == row.round])


def _header(run: Run) -> dict[str, object]:
    return dict(id=run.id, flower_run_id=run.flower_run_id, owner=run.owner,
                dataset=run.dataset, task_sha256=run.task_sha256, status=run.status,
                reason=run.reason, started_at=run.started_at, finished_at=run.finished_at)


def _summary(run: Run) -> dict[str, object]:
    return {**_header(run), "rounds_planned": TaskSpec.from_json(run.task_json).rounds,
            "rounds_done": sum(1 for r in run.rounds
                               if r.evaluated_nodes and r.round != BASE_ROUND),
            "model_sha256": run.model_sha256}


def run_summary(run: Run) -> RunSummary:
    return RunSummary.model_validate(_summary(run))


def run_out(run: Run) -> RunOut:
    return RunOut.model_validate({**_summary(run),
                                  "rounds": [round_out(r, run) for r in run.rounds],
                                  "receipt": receipt(run)})


def receipt(run: Run) -> Receipt | None:
    """Round 0's metrics (the base model) against the last evaluated round's."""
    evaluated = [r for r in run.rounds if r.evaluated_nodes]
    if len(evaluated) < 2 or evaluated[0].round != BASE_ROUND:
        return None
    base, final = evaluated[0], evaluated[-1]
    return Receipt(final_round=final.round, base_partners=base.evaluated_nodes,
                   final_partners=final.evaluated_nodes,
                   metrics=[MetricChange(metric=k, base=base.metrics[k],
                                         improved=final.metrics[k])
                            for k in sorted(base.metrics.keys() & final.metrics.keys())])


def model_card(run: Run) -> ModelCard:
    last: dict[str, PrivacyRecord] = {}
    rounds: dict[str, int] = {}
    for r in run.privacy_reports:  # ordered by round
        last[r.partner] = r
        rounds[r.partner] = rounds.get(r.partner, 0) + (r.round != BASE_ROUND)
    return ModelCard(
        run_id=run.id, dataset=run.dataset, status=run.status, reason=run.reason,
        task=TaskSpec.from_json(run.task_json), task_sha256=run.task_sha256,
        model_sha256=run.model_sha256, started_at=run.started_at,
        finished_at=run.finished_at, metrics=[round_out(r, run) for r in run.rounds],
        receipt=receipt(run),
        privacy=[PartnerSpend(partner=p, rounds_trained=rounds[p], epsilon=r.epsilon,
                              lifetime_epsilon=r.lifetime_epsilon, epsilon_cap=r.epsilon_cap,
                              delta=r.delta)
                 for p, r in sorted(last.items())],
        notes=CARD_NOTES)


def audit_run(run: Run) -> AuditRun:
    return AuditRun.model_validate({**_header(run), "records": [
        AuditRecord.model_validate(r) for r in run.privacy_reports]})


def dataset_spends(records: list[PrivacyRecord]) -> list[DatasetSpend]:
    """What the coordinator's records say each partner dataset spent."""
    groups: dict[tuple[str, str], list[PrivacyRecord]] = {}
    for r in records:
        groups.setdefault((r.partner, r.dataset), []).append(r)
    spends = []
    for (partner, dataset), rows in sorted(groups.items()):
        latest = max(rows, key=lambda r: r.ledger_seq)
        history = [(str(r.run_id), m) for r in rows for m in round_mechanisms(
            r.noise_multiplier, r.sample_rate, r.steps, r.evaluation_noise_multiplier)]
        spends.append(DatasetSpend(
            partner=partner, dataset=dataset, delta=latest.delta,
            epsilon_cap=latest.epsilon_cap, reported_epsilon=latest.lifetime_epsilon,
            recorded_epsilon=spending(history, latest.delta).lifetime,
            runs=len({r.run_id for r in rows}), rounds=len(rows),
            ledger_seq=latest.ledger_seq, ledger_hash=latest.ledger_hash))
    return spends
