"""What a dataset has spent, read from the partner's own ledger (the source of truth)."""

from __future__ import annotations

from pydantic import BaseModel

from .ledger import COMMIT, RESERVE, Ledger
from .policy import PartnerPolicy


class RunSpend(BaseModel):
    run_id: str
    rounds: int  # reserved rounds; all count as spent
    committed: int  # of which the update was handed to Flower
    epsilon: float  # this run alone (runs compose: these do not add up to `spent`)


class DatasetBudget(BaseModel):
    partner: str
    dataset: str
    cap: float
    delta: float
    spent: float  # lifetime epsilon over every reserve in the ledger
    remaining: float
    runs: list[RunSpend]


def dataset_budget(policy: PartnerPolicy, dataset: str) -> DatasetBudget:
    rules = policy.dataset(dataset)
    with Ledger(policy.ledger_path(dataset)) as ledger:
        entries = ledger.entries()
        spent = ledger.epsilon(rules.delta)
        runs = []
        for run_id in dict.fromkeys(e.run_id for e in entries):  # in order of first spend
            mine = [e for e in entries if e.run_id == run_id]
            runs.append(RunSpend(
                run_id=run_id, rounds=sum(e.kind == RESERVE for e in mine),
                committed=sum(e.kind == COMMIT for e in mine),
                epsilon=ledger.epsilon(rules.delta, run_id=run_id)))
    return DatasetBudget(partner=policy.partner, dataset=dataset, cap=rules.epsilon_cap,
                         delta=rules.delta, spent=spent,
                         remaining=max(0.0, rules.epsilon_cap - spent), runs=runs)
