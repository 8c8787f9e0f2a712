"""The partner's privacy ledger: one append-only, hash-chained SQLite file per dataset.

Each entry is either a *reserve* (a round's mechanism: sigma, q, steps, delta), written
and committed to disk before that round trains, or a *commit* naming a reserve whose
update was handed to Flower for sending. Spent budget is every reserve, committed or
not: a crash after reserving may waste budget but never hides it. Epsilon is always
recomputed by the accountant from the reserves (the ledger is the accountant's history of
mechanisms made durable), never stored as the truth.

A reserve also carries its run's plan (rounds declared, and until when the run's
remaining rounds stay promised): the cap check counts the promised rounds of every
other open run, so two runs that fit the cap only one at a time cannot both start.

Tamper evidence: every entry carries the hash of the one before it and its own hash; a
`head` row written in the same transaction pins the last one; triggers refuse UPDATE and
DELETE. `verify()` names the first entry that was edited, removed or re-ordered inside
the chain, and a last entry that disagrees with the head. Someone who rewrites the end of
the file consistently (entries and head together) is caught only against an outside
anchor: every privacy report sends the ledger's head (seq, hash) to the coordinator, and
`verify(expect=...)` checks that such a recorded head is still in the chain; auditors
check every recorded head against the partner's signed export (`export_ledger`). The
format (entries, the chain walk, export) is in shared/ledger_format.py, the hashes in
shared/hash_chain.py.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sangsaeng.shared.accounting import Mechanism, Spending, epsilon, gaussian, spending
from sangsaeng.shared.hash_chain import GENESIS, canonical_sha256
from sangsaeng.shared.ledger_format import (
    COMMIT,
    EVALUATE,
    RESERVE,
    Entry,
    Head,
    LedgerExport,
    SignedLedgerExport,
    VerifyResult,
    hashed_fields,
    verify_chain,
)
from sangsaeng.shared.signing import load_key, public_key_of, sign
from sangsaeng.shared.wire import BASE_ROUND

from .policy import LEDGER_GLOB, PartnerPolicy, TaskRefused

__all__ = ["BASE_ROUND", "COMMIT", "EVALUATE", "RESERVE", "Entry", "Identity", "Ledger",
           "LedgerExists", "LedgerMismatch", "LedgerMissing", "VerifyResult", "export_ledger",
           "init_ledger", "open_ledger"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    noise_multiplier REAL, sample_rate REAL, steps INTEGER, delta REAL,
    task_sha256 TEXT NOT NULL,
    ref INTEGER,
    run_rounds INTEGER, plan_until TEXT,
    time TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    evaluation_noise_multiplier REAL
);
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, hash TEXT);
CREATE TABLE IF NOT EXISTS identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    dataset TEXT NOT NULL,
    data_file TEXT NOT NULL,
    holdout_key TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS identity_no_update BEFORE UPDATE ON identity
    BEGIN SELECT RAISE(ABORT, 'a ledger belongs to one data file for life'); END;
CREATE TRIGGER IF NOT EXISTS identity_no_delete BEFORE DELETE ON identity
    BEGIN SELECT RAISE(ABORT, 'a ledger belongs to one data file for life'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
"""


class LedgerMissing(FileNotFoundError):
    """No ledger file: the partner never ran `ledger init` for the dataset, or the file was
    removed. Nothing ever makes one implicitly: a lost ledger must not restart a budget."""


class LedgerExists(FileExistsError):
    """`ledger init` would replace or duplicate a ledger."""


class LedgerMismatch(ValueError):
    """The ledger belongs to another dataset or data file than the policy names."""


@dataclass(frozen=True)
class Identity:
    """What a ledger is the budget of, fixed when it is made: the dataset's name and its
    data file (resolved), and the partner's secret that draws the holdout split."""

    dataset: str
    data_file: str
    holdout_key: str  # 32 hex digits: the key of the holdout hash (client/data.py)


class Ledger:
    def __init__(self, path: Path) -> None:
        """Open an existing ledger (`Ledger.create` makes one). A removed ledger is
        reported, never silently replaced by an empty one."""
        if not path.is_file():
            raise LedgerMissing(f"no ledger at {path}: run `sangsaeng client ledger init` "
                                "for this dataset first (if it had one, the file was removed: "
                                "restore it from backup)")
        self.path = path
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below).
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed reserve survives power loss
        self._db.executescript(SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(entries)")}
        if "evaluation_noise_multiplier" not in columns:  # a ledger from before DP evaluation
            self._db.execute("ALTER TABLE entries ADD COLUMN evaluation_noise_multiplier REAL")

    @classmethod
    def create(cls, path: Path, dataset: str, data_file: Path) -> Ledger:
        """Make a new, empty ledger bound to `dataset` and its data file."""
        if path.exists():
            raise LedgerExists(f"{path} already exists: a dataset's ledger is never replaced")
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, isolation_level=None) as db:
            db.executescript(SCHEMA)
            db.execute("INSERT INTO identity VALUES (1, ?, ?, ?, ?)",
                       (dataset, str(data_file.resolve()), secrets.token_hex(16),
                        dt.datetime.now(dt.UTC).isoformat()))
        db.close()
        return cls(path)

    def identity(self) -> Identity:
        row = self._db.execute("SELECT dataset, data_file, holdout_key FROM identity").fetchone()
        if row is None:
            raise LedgerMismatch(f"{self.path} has no identity (not made by `ledger init`)")
        return Identity(row["dataset"], row["data_file"], row["holdout_key"])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- writes ---------------------------------------------------------------------

    def reserve(self, *, run_id: str, round_: int, planned: Mechanism, evaluation: float,
                run_rounds: int, delta: float, cap: float, task_sha256: str, partner: str,
                plan_seconds: float) -> Entry:
        """Durably reserve one round of a run of `run_rounds` rounds — its training
        (`planned`) and one evaluation release (noise multiplier `evaluation`) — if the run
        has rounds left and its whole remaining plan, on top of everything reserved and
        every other open run's promised rounds, keeps the dataset's lifetime epsilon within
        `cap`. Round 0 (BASE_ROUND) is the base model's evaluation before training: its
        reserve records the planned mechanism with no steps, and spends one evaluation
        release. Each round of a run is reserved once.

        The promise of this run's later rounds lapses `plan_seconds` after this reserve
        (a run that went quiet that long has failed; a later round is simply checked anew).
        All under SQLite's write lock (BEGIN IMMEDIATE): concurrent runs are checked one
        after the other, each against everything the others reserved and promised.
        """
        with self._write() as db:
            rows = self._rows(db)
            broken = verify_chain(rows, head=self._head(db))
            if not broken.ok:
                raise TaskRefused(f"partner '{partner}' refuses: its privacy ledger fails "
                                  f"verification at entry {broken.first_broken_seq}")
            reserves = [Entry.model_validate(r) for r in rows if r["kind"] == RESERVE]
            if not 0 <= round_ <= run_rounds:
                raise TaskRefused(f"partner '{partner}' refuses: round {round_} is not a "
                                  f"round of this {run_rounds}-round run")
            if any(e.run_id == run_id and e.round == round_ for e in reserves):
                raise TaskRefused(f"partner '{partner}' already reserved round {round_} of "
                                  "this run")
            # rounds 1..run_rounds, each once: the run's training cannot outgrow its plan
            done = sum(e.run_id == run_id and e.round != BASE_ROUND for e in reserves)
            now = dt.datetime.now(dt.UTC)
            history = [m for e in reserves for m in e.mechanisms()]
            promised = _promised_rounds(reserves, now, excluding=run_id)
            round_plan = [planned, gaussian(evaluation)]
            if round_ == BASE_ROUND:  # the base model's evaluation: no training steps
                planned = planned.model_copy(update={"steps": 0})
                this, later = [gaussian(evaluation)], run_rounds - done
            else:
                this, later = round_plan, run_rounds - done - 1
            projected = epsilon([*history, *promised, *this, *round_plan * later], delta)
            if projected > cap:
                spent = epsilon(history, delta)
                others = " and other open runs' promised rounds" if promised else ""
                raise TaskRefused(
                    f"partner '{partner}' refuses: this run's plan{others} would bring the "
                    f"dataset's lifetime epsilon to {projected:.2f}, over its cap {cap:g} "
                    f"(spent {spent:.2f})")
            until = now + dt.timedelta(seconds=plan_seconds)
            return self._append(db, kind=RESERVE, run_id=run_id, round=round_,
                                noise_multiplier=planned.noise_multiplier,
                                sample_rate=planned.sample_rate, steps=planned.steps,
                                delta=delta, task_sha256=task_sha256, run_rounds=run_rounds,
                                plan_until=until.isoformat(),
                                evaluation_noise_multiplier=evaluation)

    def evaluate(self, *, run_id: str, round_: int, partner: str) -> Entry:
        """Use the evaluation release reserved with this run's round: durably, once.
        Returns the reserve (its evaluation noise multiplier is the one to use)."""
        with self._write() as db:
            entries = [Entry.model_validate(r) for r in self._rows(db)]
            reserve = next((e for e in entries if e.kind == RESERVE and e.run_id == run_id
                            and e.round == round_ and e.evaluation_noise_multiplier), None)
            if reserve is None:
                raise TaskRefused(f"partner '{partner}' evaluates only rounds it reserved "
                                  f"(with their evaluation) in this run; round {round_} is not")
            if any(e.kind == EVALUATE and e.ref == reserve.seq for e in entries):
                raise TaskRefused(f"partner '{partner}' already evaluated round {round_} of "
                                  "this run")
            self._append(db, kind=EVALUATE, run_id=run_id, round=round_,
                         task_sha256=reserve.task_sha256, ref=reserve.seq)
            return reserve

    def commit(self, reserve: Entry) -> Entry:
        with self._write() as db:
            return self._append(db, kind=COMMIT, run_id=reserve.run_id, round=reserve.round,
                                task_sha256=reserve.task_sha256, ref=reserve.seq)

    # --- reads ----------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        return [Entry.model_validate(row) for row in self._rows(self._db)]

    def training_rounds(self, run_id: str) -> int:
        """How many training rounds (not the base model's evaluation) the run reserved."""
        return sum(e.kind == RESERVE and e.run_id == run_id and e.round != BASE_ROUND
                   for e in self.entries())

    def history(self) -> list[Mechanism]:
        """Every reserved mechanism, in order: the accountant's history."""
        return [m for e in self.entries() if e.kind == RESERVE for m in e.mechanisms()]

    def spending(self, delta: float, upto: int | None = None) -> Spending:
        """What the dataset has spent (up to entry `upto`, if given): every reserve,
        committed or not."""
        return spending(((e.run_id, m) for e in self.entries()
                         if e.kind == RESERVE and (upto is None or e.seq <= upto)
                         for m in e.mechanisms()), delta)

    def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last entry: what privacy reports send as an outside anchor."""
        return self._head(self._db)

    def verify(self, expect: tuple[int, str] | None = None) -> VerifyResult:
        """Walk the chain; with `expect` (a head the coordinator recorded), also check that
        that entry is still there with that hash. One snapshot: a concurrent append
        cannot make it see a half-written ledger."""
        self._db.execute("BEGIN")
        try:
            rows, head = self._rows(self._db), self._head(self._db)
        finally:
            self._db.execute("COMMIT")
        result = verify_chain(rows, head)
        if result.ok and expect is not None:
            seq, hash_ = expect
            if not any(r["seq"] == seq and r["hash"] == hash_ for r in rows):
                return VerifyResult(ok=False, entries=len(rows), first_broken_seq=seq,
                                    problem=f"entry {seq} as recorded elsewhere is not in the "
                                            "ledger (the end was removed or rewritten)")
        return result

    def export(self, *, partner: str, dataset: str, delta: float, epsilon_cap: float,
               key: Ed25519PrivateKey) -> SignedLedgerExport:
        """Every entry and the head as they are (one snapshot, broken or not: the auditor
        judges), signed with the partner's key."""
        self._db.execute("BEGIN")
        try:
            rows, head = self._rows(self._db), self._head(self._db)
        finally:
            self._db.execute("COMMIT")
        export = LedgerExport(
            partner=partner, dataset=dataset, delta=delta, epsilon_cap=epsilon_cap,
            exported_at=dt.datetime.now(dt.UTC).isoformat(),
            head=None if head is None else Head(seq=head[0], hash=head[1]),
            entries=rows, public_key=public_key_of(key))
        return SignedLedgerExport(export=export, signature=sign(key, export.signed_bytes()))

    # --- internals ------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @staticmethod
    def _rows(db: sqlite3.Connection) -> list[dict[str, object]]:
        return [dict(row) for row in db.execute("SELECT * FROM entries ORDER BY seq")]

    @staticmethod
    def _head(db: sqlite3.Connection) -> tuple[int, str] | None:
        row = db.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        return None if row is None else (row["seq"], row["hash"])

    def _append(self, db: sqlite3.Connection, **fields: object) -> Entry:
        head = self._head(db)
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS)
        values = {"noise_multiplier": None, "sample_rate": None, "steps": None, "delta": None,
                  "ref": None, "run_rounds": None, "plan_until": None, **fields, "seq": seq,
                  "prev_hash": prev_hash, "time": dt.datetime.now(dt.UTC).isoformat()}
        entry = Entry.model_validate({**values, "hash": canonical_sha256(hashed_fields(values))})
        row = entry.model_dump()
        db.execute(f"INSERT INTO entries ({', '.join(row)}) VALUES "
                   f"({', '.join(':' + k for k in row)})", row)
        db.execute("INSERT OR REPLACE INTO head (id, seq, hash) VALUES (1, ?, ?)",
                   (entry.seq, entry.hash))
        return entry


def open_ledger(policy: PartnerPolicy, dataset: str) -> Ledger:
    """The dataset's ledger, checked to be the budget of the data file the policy names.
    Raises LedgerMissing or LedgerMismatch."""
    rules = policy.dataset(dataset)
    ledger = Ledger(policy.ledger_path(dataset))
    try:
        identity = ledger.identity()
        if identity.dataset != dataset or identity.data_file != str(rules.data_path.resolve()):
            raise LedgerMismatch(f"the ledger of dataset '{dataset}' was made for another "
                                 "dataset or data file than its policy now names")
    except BaseException:
        ledger.close()
        raise
    return ledger


def init_ledger(policy: PartnerPolicy, dataset: str) -> Path:
    """Make the dataset's ledger. Refused if it has one, or if any ledger in the ledger
    directory already holds the budget of the same data file (one file, one budget)."""
    rules = policy.dataset(dataset)
    path = policy.ledger_path(dataset)
    if path.exists():
        raise LedgerExists(f"dataset '{dataset}' already has its ledger at {path}")
    data_file = str(rules.data_path.resolve())
    for other in sorted(policy.ledger_dir.glob(LEDGER_GLOB)):
        with Ledger(other) as ledger:
            if ledger.identity().data_file == data_file:
                raise LedgerExists(f"the data file of dataset '{dataset}' already has its "
                                   f"budget in {other}: one data file has one budget")
    Ledger.create(path, dataset, rules.data_path).close()
    return path


def export_ledger(policy: PartnerPolicy, dataset: str) -> SignedLedgerExport:
    """The dataset's ledger signed with the partner's key, for auditors. Raises
    LedgerMissing, LedgerMismatch, or signing.SigningKeyError if the partner has no key."""
    rules = policy.dataset(dataset)
    key = load_key(policy.signing_key_path())
    with open_ledger(policy, dataset) as ledger:
        return ledger.export(partner=policy.partner, dataset=dataset, delta=rules.delta,
                             epsilon_cap=rules.epsilon_cap, key=key)


def _promised_rounds(reserves: list[Entry], now: dt.datetime, excluding: str) -> list[Mechanism]:
    """The rounds other open runs declared but have not reserved yet, while their promise
    lasts: each run's latest reserve says how many rounds it declared and until when.
    A run whose only reserve is its base evaluation promises evaluations alone (that
    reserve ran no steps): in the seconds before its first round, another run may take
    the budget its training needs, and it then stops at that round's reserve; the cap
    holds either way, since every reserve checks it."""
    latest: dict[str, Entry] = {}
    count: dict[str, int] = {}
    for e in reserves:
        latest[e.run_id] = e
        count[e.run_id] = count.get(e.run_id, 0) + (e.round != BASE_ROUND)
    promised: list[Mechanism] = []
    for run_id, e in latest.items():
        if (run_id != excluding and e.run_rounds and e.plan_until
                and dt.datetime.fromisoformat(e.plan_until) > now):
            promised += e.mechanisms() * max(0, e.run_rounds - count[run_id])
    return promised
