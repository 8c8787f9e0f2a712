"""What a dataset has spent, read from the partner's own ledger (the source of truth)."""

from __future__ import annotations

from pydantic import BaseModel

from sangsaeng.shared.accounting import spending

from .ledger import COMMIT, RESERVE, open_ledger
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


class LedgerBroken(ValueError):
    """The ledger fails verification: no figure computed from it can be trusted."""


def dataset_budget(policy: PartnerPolicy, dataset: str) -> DatasetBudget:
    """Raises ledger.LedgerMissing if the dataset has no ledger, LedgerMismatch if it is
    another data file's, LedgerBroken if it does not verify."""
    rules = policy.dataset(dataset)
    with open_ledger(policy, dataset) as ledger:
        check = ledger.verify()
        if not check.ok:
            raise LedgerBroken(f"the {dataset} ledger fails verification at entry "
                               f"{check.first_broken_seq}: {check.problem}")
        entries = ledger.entries()
    spent = spending(((e.run_id, m) for e in entries if e.kind == RESERVE
                      for m in e.mechanisms()), rules.delta)
    runs = [
        RunSpend(run_id=run_id,
                 rounds=sum(e.run_id == run_id and e.kind == RESERVE for e in entries),
                 committed=sum(e.run_id == run_id and e.kind == COMMIT for e in entries),
                 epsilon=run_epsilon)
        for run_id, run_epsilon in spent.runs.items()  # in order of first spend
    ]
    return DatasetBudget(partner=policy.partner, dataset=dataset, cap=rules.epsilon_cap,
                         delta=rules.delta, spent=spent.lifetime,
                         remaining=max(0.0, rules.epsilon_cap - spent.lifetime), runs=runs)


