"""What a partner's cap check costs as its ledger grows: `Ledger.reserve` (read the chain,
verify it, compose every reserve with the run's plan, write) on ledgers of 10 to 1,000
reserves, with the PLD accountant (shared/accounting.py), against the RDP accountant
Sangsaeng used before on the same histories, in the same run.

    .venv/bin/python bench/accounting.py [--reps 5] [--sizes 10,100,300,1000]

Each ledger holds runs of 5 rounds (50 steps at q = 1/25, and an evaluation release at σ 30)
whose σ brings the dataset's lifetime ε near a cap of 10, as a ledger with that many entries
would be: *repeating*, every run with the same σ (a task with a fixed noise multiplier), and
*all distinct*, every run with its own σ (tasks with a target ε: nothing merges). A last row
is far past any cap (σ 0.8-1.2, lifetime ε ~70): composed PLDs widen with ε. "warm" is a
reserve in a process that has accounted before (dp_accounting imported, one-step PLDs cached);
"cold" is a fresh process's first reserve, imports included, as in a Flower ClientApp process
(one per message).
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from unittest.mock import patch

import numpy as np

from sangsaeng.client import ledger as ledger_module
from sangsaeng.client.ledger import RESERVE, Ledger
from sangsaeng.shared.accounting import (
    Mechanism,
    epsilon,
    gaussian,
    noise_for_target,
)

DELTA, EVALUATION, ROUNDS, CAP = 1e-5, 30.0, 5, 10.0
Q, STEPS = 1 / 25, 50
SIZES = [10, 100, 300, 1000]


def history(reserves: int, distinct: bool, sigma: float | None = None) -> list[Mechanism]:
    """Training mechanisms, one per reserve, in runs of ROUNDS rounds; σ brings the
    lifetime near CAP unless given. Distinct runs spread σ by ±5 %."""
    if sigma is None:
        sigma = noise_for_target(CAP, DELTA, Q, STEPS * reserves,
                                 fixed=(gaussian(EVALUATION),) * reserves)
    runs = -(-reserves // ROUNDS)
    return [Mechanism(noise_multiplier=sigma * (0.95 + 0.1 * (i // ROUNDS) / runs
                                                if distinct else 1.0),
                      sample_rate=Q, steps=STEPS) for i in range(reserves)]


def build(path: Path, items: list[Mechanism]) -> Ledger:
    """A ledger holding `items` as reserves. Written with the ledger's own append (the
    chain is real) but without a cap check per entry: only the reserve measured is checked."""
    ledger = Ledger.create(path, "bench", path.parent / "data.csv")
    with ledger._write() as db:
        for i, m in enumerate(items):
            ledger._append(db, kind=RESERVE, run_id=str(i // ROUNDS), round=i % ROUNDS + 1,
                           noise_multiplier=m.noise_multiplier, sample_rate=m.sample_rate,
                           steps=m.steps, delta=DELTA, task_sha256="b" * 64,
                           run_rounds=ROUNDS, plan_until="2000-01-01T00:00:00+00:00",
                           evaluation_noise_multiplier=EVALUATION)
    return ledger


def reserve_seconds(ledger: Ledger, run: str) -> float:
    start = time.perf_counter()
    ledger.reserve(run_id=run, round_=1, planned=Mechanism(noise_multiplier=1.0,
                   sample_rate=Q, steps=STEPS), evaluation=EVALUATION, run_rounds=ROUNDS,
                   delta=DELTA, cap=1e9, task_sha256="b" * 64, partner="bench",
                   plan_seconds=600)
    return time.perf_counter() - start


COLD = """
import sys, time
start = time.perf_counter()
from pathlib import Path
from sangsaeng.client.ledger import Ledger
from sangsaeng.shared.accounting import Mechanism
ledger = Ledger(Path(sys.argv[1]))
ledger.reserve(run_id="cold", round_=1, planned=Mechanism(noise_multiplier=1.0,
               sample_rate=1 / 25, steps=50), evaluation=30.0, run_rounds=5, delta=1e-5,
               cap=1e9, task_sha256="b" * 64, partner="bench", plan_seconds=600)
print(time.perf_counter() - start)
"""


def cold_seconds(path: Path) -> float:
    """A fresh interpreter's import of the ledger and its first reserve, on a copy (the
    reserve appends to it; SQLite's backup copies what is still in the write-ahead log)."""
    copy = path.with_suffix(".cold.sqlite")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    target.close()
    out = subprocess.run([sys.executable, "-c", COLD, str(copy)], check=True,
                         capture_output=True, text=True).stdout
    copy.unlink()
    return float(out.split()[-1])


@functools.cache
def _rdp_analysis() -> ModuleType:
    from opacus.accountants.analysis import rdp

    return rdp


ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))  # Opacus' defaults


@functools.lru_cache(maxsize=4096)
def _rdp_step(q: float, sigma: float) -> np.ndarray:
    return _rdp_analysis().compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=ORDERS)


def rdp_epsilon(items: Iterable[Mechanism], delta: float) -> float:
    """The previous accountant: Opacus' RDP per distinct (q, σ), cached, times its steps."""
    rdp = [_rdp_step(m.sample_rate, m.noise_multiplier) * m.steps for m in items if m.steps]
    if not rdp:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps, _ = _rdp_analysis().get_privacy_spent(orders=ORDERS, rdp=sum(rdp), delta=delta)
    return float(eps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="ledger sizes, comma-separated")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"reserve checks on ledgers of reserves (runs of {ROUNDS} rounds, each with its "
          f"evaluation release), δ={DELTA:g}; median of {args.reps} reps\n")
    print("| history | reserves | distinct (σ, q) | PLD reserve, warm s | RDP reserve, warm s "
          "| PLD/RDP | PLD reserve, cold s | PLD ε | RDP ε | PLD ε / RDP ε |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    cases = [(size, distinct, None) for distinct in (False, True) for size in sizes]
    with tempfile.TemporaryDirectory(prefix="sangsaeng-bench-accounting-") as tmp:
        for size, distinct, sigma in [*cases, (300, True, 1.0)]:
            print(row(Path(tmp), size, distinct, sigma, args.reps), flush=True)


def row(tmp: Path, size: int, distinct: bool, sigma: float | None, reps: int) -> str:
    items = history(size, distinct, sigma)
    path = tmp / f"{size}-{distinct}-{sigma}.sqlite"
    ledger = build(path, items)
    reserve_seconds(ledger, "warm-up")  # dp_accounting imported, one-step PLDs cached
    with previous_accountant():
        reserve_seconds(ledger, "warm-up-rdp")
    pld_s, rdp_s = [], []
    for i in range(reps):  # the two accountants take turns
        pld_s.append(reserve_seconds(ledger, f"pld-{i}"))
        with previous_accountant():
            rdp_s.append(reserve_seconds(ledger, f"rdp-{i}"))
    ledger.close()
    cold = statistics.median(cold_seconds(path) for _ in range(reps))
    mechanisms = [m for r in items for m in (r, gaussian(EVALUATION))]
    pld, rdp = epsilon(mechanisms, DELTA), rdp_epsilon(mechanisms, DELTA)
    pairs = len({(m.noise_multiplier, m.sample_rate) for m in mechanisms})
    kind = ("all distinct" if distinct else "repeating") + ("" if sigma is None
                                                            else ", past any cap")
    return (f"| {kind} | {size:,} | {pairs} | {statistics.median(pld_s):.3f} "
            f"| {statistics.median(rdp_s):.3f} "
            f"| {statistics.median(p / r for p, r in zip(pld_s, rdp_s, strict=True)):.1f}x "
            f"| {cold:.2f} | {pld:.2f} | {rdp:.2f} | {pld / rdp:.2f} |")


def previous_accountant() -> AbstractContextManager[object]:
    """The ledger's cap check with the RDP accountant in place of the PLD one."""
    return patch.object(ledger_module, "epsilon", rdp_epsilon)


if __name__ == "__main__":
    main()
