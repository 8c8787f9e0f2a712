"""The partner's ledger: durable reserves, the cap under concurrency, tamper evidence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sangsaeng.client.ledger import (
    COMMIT,
    RESERVE,
    SCHEMA,
    Entry,
    Ledger,
    LedgerExists,
    LedgerMissing,
)
from sangsaeng.client.policy import TaskRefused
from sangsaeng.shared.accounting import Mechanism, epsilon, gaussian
from sangsaeng.shared.hash_chain import GENESIS, canonical_sha256

from ..support.tasks import opacus_live_epsilon

ROUND = Mechanism(noise_multiplier=1.0, sample_rate=0.04, steps=50)
DELTA = 1e-5
QUIET = 1e6  # an evaluation release of negligible ε: these tests are about training


def reserve(ledger: Ledger, run: str, round_: int = 1, run_rounds: int = 1,
            cap: float = 100.0, plan_seconds: float = 600) -> Entry:
    return ledger.reserve(run_id=run, round_=round_, planned=ROUND, evaluation=QUIET,
                          run_rounds=run_rounds, delta=DELTA, cap=cap, task_sha256="t" * 64,
                          partner="acme", plan_seconds=plan_seconds)


def _new(directory: Path) -> Ledger:
    return Ledger.create(directory / "l.sqlite", "caravan", directory / "data.csv")


def filled(path: Path) -> Ledger:
    """Two runs: run a with two committed rounds, run b with one reserve never committed."""
    ledger = Ledger.create(path, "caravan", path.parent / "data.csv")
    for round_ in (1, 2):
        ledger.commit(reserve(ledger, "a", round_, run_rounds=2))
    reserve(ledger, "b")
    return ledger


def test_epsilon_composes_every_reserve_and_matches_opacus(tmp_path: Path) -> None:
    ledger = filled(tmp_path / "l.sqlite")
    assert [e.kind for e in ledger.entries()] == [RESERVE, COMMIT, RESERVE, COMMIT, RESERVE]
    # each reserve: its training and its evaluation; the uncommitted one counts as spent
    spent = [ROUND, gaussian(QUIET)]
    assert ledger.history() == spent * 3
    assert ledger.spending(DELTA).lifetime == pytest.approx(opacus_live_epsilon(spent * 3, DELTA),
                                                            rel=0.01)
    assert ledger.spending(DELTA).runs["a"] == pytest.approx(epsilon(spent * 2, DELTA))
    assert ledger.verify().ok


def test_a_plan_over_the_cap_writes_nothing(tmp_path: Path) -> None:
    ledger = _new(tmp_path)
    cap = epsilon([ROUND] * 2, DELTA) + 0.01
    reserve(ledger, "a", run_rounds=2, cap=cap)  # run a's plan: 2 rounds, fits
    with pytest.raises(TaskRefused, match=r"this run's plan.* would bring .* over its cap"):
        reserve(ledger, "b", run_rounds=2, cap=cap)  # 1 reserved + 2 planned do not
    assert len(ledger.entries()) == 1
    reserve(ledger, "a", round_=2, run_rounds=2, cap=cap)
    with pytest.raises(TaskRefused, match="round 3 is not a round of this 2-round run"):
        reserve(ledger, "a", round_=3, run_rounds=2, cap=cap)
    assert ledger.spending(DELTA).lifetime <= cap


def test_open_runs_promised_rounds_keep_a_second_run_out(tmp_path: Path) -> None:
    """Two 3-round runs, a cap for 4 rounds: once run a started, run b cannot start, so
    b never trains a round that would leave a without budget for its own last rounds."""
    ledger = _new(tmp_path)
    cap = epsilon([ROUND] * 4, DELTA) + 0.01
    reserve(ledger, "a", 1, run_rounds=3, cap=cap)
    with pytest.raises(TaskRefused, match="and other open runs' promised rounds"):
        reserve(ledger, "b", 1, run_rounds=3, cap=cap)
    reserve(ledger, "a", 2, run_rounds=3, cap=cap)
    reserve(ledger, "a", 3, run_rounds=3, cap=cap)
    assert [e.run_id for e in ledger.entries()] == ["a"] * 3
    # a finished run promises nothing more: a 1-round run fits what is left
    reserve(ledger, "c", 1, run_rounds=1, cap=cap)


def test_the_base_round_spends_one_evaluation_and_checks_the_whole_run(tmp_path: Path
                                                                       ) -> None:
    """Round 0 evaluates the base model before training: its reserve records the planned
    mechanism with no steps and spends only its evaluation release, but is checked against
    the whole run's plan, so a run that cannot finish spends nothing on its receipt."""
    ledger = _new(tmp_path)
    evaluation = 5.0
    rounds = [ROUND, gaussian(evaluation)]
    cap = epsilon([gaussian(evaluation), *rounds * 2], DELTA) + 0.01

    def base(run: str, run_rounds: int = 2) -> Entry:
        return ledger.reserve(run_id=run, round_=0, planned=ROUND, evaluation=evaluation,
                              run_rounds=run_rounds, delta=DELTA, cap=cap,
                              task_sha256="t" * 64, partner="acme", plan_seconds=600)

    with pytest.raises(TaskRefused, match="over its cap"):
        base("big", run_rounds=3)  # the receipt, then three rounds: over the cap
    assert ledger.entries() == []
    entry = base("a")
    assert (entry.round, entry.steps, entry.noise_multiplier) == (0, 0, ROUND.noise_multiplier)
    assert ledger.history() == [ROUND.model_copy(update={"steps": 0}), gaussian(evaluation)]
    assert ledger.spending(DELTA).lifetime == pytest.approx(
        epsilon([gaussian(evaluation)], DELTA))
    with pytest.raises(TaskRefused, match="already reserved round 0 of this run"):
        base("a")
    # the base round is not one of the run's training rounds
    for round_ in (1, 2):
        ledger.reserve(run_id="a", round_=round_, planned=ROUND, evaluation=evaluation,
                       run_rounds=2, delta=DELTA, cap=cap, task_sha256="t" * 64,
                       partner="acme", plan_seconds=600)
    assert ledger.spending(DELTA).lifetime <= cap


def test_a_round_is_reserved_once(tmp_path: Path) -> None:
    ledger = _new(tmp_path)
    reserve(ledger, "a", 1, run_rounds=3)
    with pytest.raises(TaskRefused, match="already reserved round 1 of this run"):
        reserve(ledger, "a", 1, run_rounds=3)
    assert len(ledger.entries()) == 1


def test_a_quiet_run_stops_holding_budget(tmp_path: Path) -> None:
    ledger = _new(tmp_path)
    cap = epsilon([ROUND] * 4, DELTA) + 0.01
    reserve(ledger, "a", 1, run_rounds=3, cap=cap, plan_seconds=0)  # promise lapses at once
    reserve(ledger, "b", 1, run_rounds=3, cap=cap)  # 1 reserved + 3 planned: fits
    with pytest.raises(TaskRefused):
        reserve(ledger, "a", 2, run_rounds=3, cap=cap)  # checked anew: now over the cap
    assert ledger.spending(DELTA).lifetime <= cap


def _raw(path: Path) -> sqlite3.Connection:
    """What someone with the file and sqlite3 can do: drop the guards, then edit."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("DROP TRIGGER entries_no_delete")
    return db


@pytest.mark.parametrize(("tamper", "seq", "problem"), [
    ("UPDATE entries SET kind = 'bonus' WHERE seq = 2", 2, "malformed"),
    ("UPDATE entries SET noise_multiplier = 0 WHERE seq = 3", 3, "does not match its hash"),
    ("UPDATE head SET hash = 'x'", 5, "head does not match its last entry"),
    ("UPDATE entries SET noise_multiplier = 3.0 WHERE seq = 3", 3, "does not match its hash"),
    ("UPDATE entries SET steps = 1 WHERE seq = 5", 5, "does not match its hash"),
    ("UPDATE entries SET run_id = 'z' WHERE seq = 1", 1, "does not match its hash"),
    ("DELETE FROM entries WHERE seq = 2", 2, "entry 2 is missing"),
    ("DELETE FROM entries WHERE seq = 1", 1, "entry 1 is missing"),
    ("DELETE FROM entries WHERE seq = 5", 5, "head does not match its last entry"),
    ("DELETE FROM entries WHERE seq >= 4", 4, "head does not match its last entry"),
    ("DELETE FROM head", 6, "head does not match its last entry"),
    ("UPDATE entries SET prev_hash = hash WHERE seq = 4", 4, "previous-hash does not match"),
])
def test_any_edit_or_deletion_is_detected(tmp_path: Path, tamper: str, seq: int,
                                          problem: str) -> None:
    path = tmp_path / "l.sqlite"
    filled(path).close()
    _raw(path).execute(tamper)
    result = Ledger(path).verify()
    assert not result.ok and result.first_broken_seq == seq and problem in (result.problem or "")


def test_edits_with_a_recomputed_hash_still_break_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = filled(path)
    forged = ledger.entries()[2].model_copy(update={"noise_multiplier": 5.0})
    fixed_hash = forged.expected_hash()
    _raw(path).execute("UPDATE entries SET noise_multiplier = 5.0, hash = ? WHERE seq = 3",
                       (fixed_hash,))
    result = Ledger(path).verify()
    assert (result.ok, result.first_broken_seq) == (False, 4)
    assert "this entry or the one before it was altered" in (result.problem or "")


def test_a_consistently_rewritten_end_is_caught_against_a_recorded_head(tmp_path: Path) -> None:
    """Trimming the last entries and re-pointing the head passes the chain walk alone; the
    head a privacy report sent out (and the coordinator recorded) catches it."""
    path = tmp_path / "l.sqlite"
    ledger = filled(path)
    recorded = ledger.head()
    assert recorded is not None and recorded[0] == 5
    third = ledger.entries()[2]
    db = _raw(path)
    db.execute("DELETE FROM entries WHERE seq > 3")
    db.execute("UPDATE head SET seq = 3, hash = ?", (third.hash,))
    assert Ledger(path).verify().ok  # the limit of a self-contained check
    result = Ledger(path).verify(expect=recorded)
    assert (result.ok, result.first_broken_seq) == (False, 5)
    assert "not in the ledger" in (result.problem or "")


def test_a_broken_ledger_spends_nothing_more(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    filled(path).close()
    _raw(path).execute("UPDATE entries SET steps = 1 WHERE seq = 1")
    with pytest.raises(TaskRefused, match="privacy ledger fails verification at entry 1"):
        reserve(Ledger(path), "c")


def test_opening_never_creates_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerMissing, match=r"run `sangsaeng client ledger init` .* the file "
                                            "was removed"):
        Ledger(tmp_path / "gone.sqlite")
    assert not (tmp_path / "gone.sqlite").exists()


def test_a_ledger_is_made_once_and_keeps_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    made = Ledger.create(path, "caravan", tmp_path / "data.csv")
    identity = made.identity()
    assert (identity.dataset, identity.data_file) == ("caravan", str(tmp_path / "data.csv"))
    assert len(identity.holdout_key) == 32
    made.close()
    with pytest.raises(LedgerExists, match="never replaced"):
        Ledger.create(path, "caravan", tmp_path / "data.csv")
    with pytest.raises(sqlite3.IntegrityError, match="one data file for life"):
        _raw(path).execute("UPDATE identity SET data_file = 'other.csv'")
    assert Ledger(path).identity() == identity


def test_the_ledger_refuses_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    filled(path).close()
    db = sqlite3.connect(path)
    for statement in ("UPDATE entries SET steps = 1", "DELETE FROM entries"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(statement)


def test_a_ledger_from_an_older_release_is_accounted_by_the_new_accountant(
        tmp_path: Path) -> None:
    """A ledger written before evaluation was DP (no evaluation column, hashes without
    it) and before the PLD accountant: ε is never stored, so its reserves are composed
    anew, and its chain, its history and the cap check carry on from them."""
    path = tmp_path / "old.sqlite"
    old_schema = SCHEMA.replace(",\n    evaluation_noise_multiplier REAL\n", "\n")
    assert "evaluation_noise_multiplier" not in old_schema
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(old_schema)
    db.execute("INSERT INTO identity VALUES (1, 'caravan', '/data.csv', ?, ?)",
               ("k" * 32, "2026-01-01T00:00:00+00:00"))
    prev = GENESIS
    for seq, (kind, ref) in enumerate([(RESERVE, None), (COMMIT, 1), (RESERVE, None)], 1):
        values: dict[str, object] = {
            "seq": seq, "kind": kind, "run_id": "old", "round": 1 if seq < 3 else 2,
            "noise_multiplier": None, "sample_rate": None, "steps": None, "delta": None,
            "task_sha256": "t" * 64, "ref": ref, "run_rounds": None, "plan_until": None,
            "time": f"2026-01-0{seq}T00:00:00+00:00", "prev_hash": prev}
        if kind == RESERVE:
            values.update(noise_multiplier=ROUND.noise_multiplier, delta=DELTA,
                          sample_rate=ROUND.sample_rate, steps=ROUND.steps, run_rounds=2)
        prev = canonical_sha256(values)
        db.execute(f"INSERT INTO entries ({', '.join(values)}, hash) VALUES "
                   f"({', '.join('?' * len(values))}, ?)", [*values.values(), prev])
        db.execute("INSERT OR REPLACE INTO head VALUES (1, ?, ?)", (seq, prev))
    db.close()

    with Ledger(path) as ledger:
        assert ledger.verify().ok
        assert ledger.history() == [ROUND, ROUND]  # training only: no evaluation then
        assert ledger.spending(DELTA).lifetime == pytest.approx(epsilon([ROUND] * 2, DELTA))
        new_round = [ROUND, gaussian(QUIET)]
        cap = epsilon([ROUND] * 2 + new_round, DELTA) - 0.01  # the next round does not fit
        with pytest.raises(TaskRefused, match=(
                f"would bring the dataset's lifetime epsilon to "
                f"{epsilon([ROUND] * 2 + new_round, DELTA):.2f}, over its cap")):
            reserve(ledger, "new", cap=cap)
        reserve(ledger, "new", cap=cap + 0.02)
        assert ledger.verify().ok and ledger.history() == [ROUND, ROUND, *new_round]
