"""What a dataset has spent, read from the partner's own ledger (the source of truth).

`sangsaeng client budget` and the partner's page (client/dashboard/) both read a dataset
through `dataset_ledger`, so the page cannot show another figure than the command."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from sangsaeng.shared.accounting import Mechanism, epsilon, spending

from .ledger import COMMIT, RESERVE, Entry, VerifyResult, open_ledger
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


class DatasetLedger(BaseModel):
    """One dataset's ledger as read once: its entries, their chain's verification and,
    only if the chain holds, what they spent."""

    entries: list[Entry]  # none listed if one is malformed (the verification names it)
    verification: VerifyResult
    budget: DatasetBudget | None  # None when the chain is broken: no figure can be trusted


class LedgerBroken(ValueError):
    """The ledger fails verification: no figure computed from it can be trusted."""


def dataset_ledger(policy: PartnerPolicy, dataset: str) -> DatasetLedger:
    """Raises ledger.LedgerMissing if the dataset has no ledger, LedgerMismatch if it is
    another data file's. A broken chain is reported in the result, with no budget."""
    rules = policy.dataset(dataset)
    with open_ledger(policy, dataset) as ledger:
        check = ledger.verify()
        try:
            entries = ledger.entries()
        except ValidationError:  # an entry edited to an impossible value: the chain says which
            if check.ok:
                raise
            entries = []
    if not check.ok:
        return DatasetLedger(entries=entries, verification=check, budget=None)
    spent = spending(((e.run_id, m) for e in entries if e.kind == RESERVE
                      for m in e.mechanisms()), rules.delta)
    runs = [
        RunSpend(run_id=run_id,
                 rounds=sum(e.run_id == run_id and e.kind == RESERVE for e in entries),
                 committed=sum(e.run_id == run_id and e.kind == COMMIT for e in entries),
                 epsilon=run_epsilon)
        for run_id, run_epsilon in spent.runs.items()  # in order of first spend
    ]
    budget = DatasetBudget(partner=policy.partner, dataset=dataset, cap=rules.epsilon_cap,
                           delta=rules.delta, spent=spent.lifetime,
                           remaining=max(0.0, rules.epsilon_cap - spent.lifetime), runs=runs)
    return DatasetLedger(entries=entries, verification=check, budget=budget)


def dataset_budget(policy: PartnerPolicy, dataset: str) -> DatasetBudget:
    """Raises ledger.LedgerMissing if the dataset has no ledger, LedgerMismatch if it is
    another data file's, LedgerBroken if it does not verify."""
    read = dataset_ledger(policy, dataset)
    if read.budget is None:
        check = read.verification
        raise LedgerBroken(f"the {dataset} ledger fails verification at entry "
                           f"{check.first_broken_seq}: {check.problem}")
    return read.budget


def epsilon_timeline(entries: list[Entry], delta: float, max_points: int = 120,
                     known: dict[tuple[str, float], float] | None = None
                     ) -> list[tuple[int, float]]:
    """(seq, lifetime ε after that entry), from (0, 0.0): the accountant run over each
    prefix of the history, never a sum of per-entry ε's. Only reserves spend; the entries
    after one repeat its ε. The last value is `spending`'s lifetime ε of the whole ledger
    (the same accountant over the same history).

    Each prefix costs an accountant run (~40 ms): past `max_points` reserves only that
    many, evenly spread and always the last, are accounted, and the entries after the
    others are left out. `known` keeps ε's already computed, by reserve hash (its chain
    pins the whole prefix) and δ, for a long-running caller."""
    reserves = [i for i, e in enumerate(entries) if e.kind == RESERVE]
    step = max(1.0, (len(reserves) - 1) / max(1, max_points - 1))
    accounted = {reserves[round(j * step)] for j in range(min(len(reserves), max_points))}
    accounted |= set(reserves[-1:])
    cache = {} if known is None else known
    history: list[Mechanism] = []
    points: list[tuple[int, float]] = [(0, 0.0)]
    current: float | None = 0.0
    for i, e in enumerate(entries):
        if e.kind == RESERVE:
            history += e.mechanisms()
            current = None
            if i in accounted:
                key = (e.hash, delta)
                if key not in cache:
                    cache[key] = epsilon(history, delta)
                current = cache[key]
        if current is not None:
            points.append((e.seq, current))
    return points
