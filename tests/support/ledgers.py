"""A partner policy whose dataset's ledger already holds runs, written through the
ledger's own reserve and commit (as rounds write them), for tests of what reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sangsaeng.client.ledger import Ledger
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.shared.accounting import Mechanism

from .tasks import caravan_policy

DELTA = 1e-5  # caravan_policy's
QUIET = 1e3  # the evaluation releases' noise multiplier: a negligible ε


@dataclass(frozen=True)
class PastRun:
    run_id: str
    rounds: int  # reserved
    committed: int  # of them, in order
    mechanism: Mechanism


def spent_policy(directory: Path, runs: list[PastRun], partner: str = "acme",
                 cap: float = 10.0) -> Path:
    """A Caravan policy (a one-line stand-in data file) with `runs` in its ledger."""
    data = directory / "caravan.csv"
    data.write_text("customer_id\n1\n")
    path = caravan_policy(directory, partner, data, cap=cap, rows=100)
    with Ledger(PartnerPolicy.load(path).ledger_path("caravan")) as ledger:
        for run in runs:
            for round_ in range(1, run.rounds + 1):
                entry = ledger.reserve(run_id=run.run_id, round_=round_,
                                       planned=run.mechanism, evaluation=QUIET,
                                       run_rounds=run.rounds, delta=DELTA, cap=cap,
                                       task_sha256="t" * 64, partner=partner,
                                       plan_seconds=600)
                if round_ <= run.committed:
                    ledger.commit(entry)
    return path
