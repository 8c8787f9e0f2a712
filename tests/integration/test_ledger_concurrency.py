"""The ledger's cap holds when separate processes (partner nodes of concurrent runs)
reserve at the same moment: SQLite's write lock puts their checks one after the other."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from sangsaeng.client.ledger import Ledger
from sangsaeng.client.policy import TaskRefused
from sangsaeng.shared.accounting import Mechanism, epsilon

ROUND = Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)
DELTA = 1e-5


def _contend(path: str, run: str, cap: float, barrier: object) -> bool:
    ledger = Ledger(Path(path))
    barrier.wait()  # type: ignore[attr-defined]
    try:
        ledger.reserve(run_id=run, round_=1, planned=ROUND, evaluation=1e6, run_rounds=1,
                       delta=DELTA, cap=cap,
                       task_sha256="t" * 64, partner="acme", plan_seconds=600)
        return True
    except TaskRefused:
        return False


def test_concurrent_runs_cannot_overspend(tmp_path: Path) -> None:
    """Four processes reserve at the same moment; the cap allows exactly one round."""
    path = tmp_path / "l.sqlite"
    Ledger.create(path, "caravan", tmp_path / "data.csv").close()
    cap = (epsilon([ROUND], DELTA) + epsilon([ROUND] * 2, DELTA)) / 2
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(4)
    with ctx.Pool(4) as pool:
        outcomes = pool.starmap(_contend, [(str(path), f"run{i}", cap, barrier)
                                           for i in range(4)], chunksize=1)
    assert sorted(outcomes) == [False] * 3 + [True]
    ledger = Ledger(path)
    assert len(ledger.entries()) == 1 and ledger.spending(DELTA).lifetime <= cap
