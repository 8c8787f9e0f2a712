"""The partner's privacy ledger: one append-only, hash-chained SQLite file per dataset.

Each entry is either a *reserve* (a round's mechanism: sigma, q, steps, delta), written
and committed to disk before that round trains, or a *commit* naming a reserve whose
update was handed to Flower for sending. Spent budget is every reserve, committed or
not: a crash after reserving may waste budget but never hides it. Epsilon is always
recomputed by the accountant from the reserves (the ledger is Opacus' accountant history
made durable), never stored as the truth.

Tamper evidence: every entry carries the hash of the one before it and its own hash;
the `head` row (written in the same transaction as each entry) pins the last one, so
editing, deleting or re-ordering any row breaks `verify()`. Triggers refuse UPDATE and
DELETE on entries. Someone able to rewrite the whole file consistently is not caught
here: signed exports for auditors come next.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sangsaeng.shared.accounting import Mechanism, epsilon

from .policy import TaskRefused

GENESIS = "0" * 64
RESERVE, COMMIT = "reserve", "commit"

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    noise_multiplier REAL, sample_rate REAL, steps INTEGER, delta REAL,
    task_sha256 TEXT NOT NULL,
    ref INTEGER,
    time TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, hash TEXT);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
"""


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    kind: Literal["reserve", "commit"]
    run_id: str
    round: int
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    delta: float | None = None
    task_sha256: str
    ref: int | None = None  # a commit's reserve
    time: str
    prev_hash: str
    hash: str

    def mechanism(self) -> Mechanism:
        """A reserve's mechanism (a commit has none: validation fails on it)."""
        return Mechanism.model_validate(
            {"noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
             "steps": self.steps})

    def expected_hash(self) -> str:
        return entry_hash(self.model_dump(exclude={"hash"}))


def entry_hash(fields: dict[str, object]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str | None = None


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below).
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed reserve survives power loss
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- writes ---------------------------------------------------------------------

    def reserve(self, *, run_id: str, round_: int, planned: Mechanism, run_rounds: int,
                delta: float, cap: float, task_sha256: str, partner: str) -> Entry:
        """Durably reserve one round of a run of `run_rounds` rounds, if the run has rounds
        left and the rest of its plan (this round included) keeps the lifetime epsilon of
        the dataset within `cap`.

        Under SQLite's write lock (BEGIN IMMEDIATE), so concurrent runs on this dataset
        are checked one after the other against everything reserved before them.
        """
        with self._write() as db:
            reserves = [e for e in self._entries(db) if e.kind == RESERVE]
            done = sum(e.run_id == run_id for e in reserves)
            if done >= run_rounds:
                raise TaskRefused(f"partner '{partner}' already trained the {run_rounds} "
                                  "rounds this run declares")
            history = [e.mechanism() for e in reserves]
            projected = epsilon([*history, *[planned] * (run_rounds - done)], delta)
            if projected > cap:
                spent = epsilon(history, delta)
                raise TaskRefused(
                    f"partner '{partner}' refuses: this run's plan would bring the dataset's "
                    f"lifetime epsilon to {projected:.2f}, over its cap {cap:g} "
                    f"(spent {spent:.2f})")
            return self._append(db, kind=RESERVE, run_id=run_id, round=round_,
                                noise_multiplier=planned.noise_multiplier,
                                sample_rate=planned.sample_rate, steps=planned.steps,
                                delta=delta, task_sha256=task_sha256)

    def commit(self, reserve: Entry) -> Entry:
        with self._write() as db:
            return self._append(db, kind=COMMIT, run_id=reserve.run_id, round=reserve.round,
                                task_sha256=reserve.task_sha256, ref=reserve.seq)

    # --- reads ----------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        return self._entries(self._db)

    def history(self, run_id: str | None = None) -> list[Mechanism]:
        """Every reserved mechanism (of one run, if given): the accountant's history."""
        return [e.mechanism() for e in self.entries()
                if e.kind == RESERVE and (run_id is None or e.run_id == run_id)]

    def epsilon(self, delta: float, run_id: str | None = None) -> float:
        return epsilon(self.history(run_id), delta)

    def verify(self) -> VerifyResult:
        entries = self.entries()
        prev_hash, reserves = GENESIS, set()
        for expected_seq, entry in enumerate(entries, start=1):
            problem = None
            if entry.seq != expected_seq:
                problem = f"entry {expected_seq} is missing (the next one is {entry.seq})"
            elif entry.prev_hash != prev_hash:
                problem = "its previous-hash does not match the entry before it"
            elif entry.hash != entry.expected_hash():
                problem = "its content does not match its hash (edited)"
            elif entry.kind == COMMIT and entry.ref not in reserves:
                problem = "it commits a reserve that is not in the ledger before it"
            if problem:
                return VerifyResult(ok=False, entries=len(entries),
                                    first_broken_seq=min(entry.seq, expected_seq),
                                    problem=problem)
            if entry.kind == RESERVE:
                reserves.add(entry.seq)
            prev_hash = entry.hash
        head = self._db.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        last = (entries[-1].seq, entries[-1].hash) if entries else (None, None)
        if (head is None and entries) or (head is not None and tuple(head) != last):
            seq = (head["seq"] if head is not None else None) or len(entries) + 1
            return VerifyResult(ok=False, entries=len(entries),
                                first_broken_seq=min(seq, len(entries) + 1),
                                problem="the ledger's head does not match its last entry "
                                        "(entries deleted or added at the end)")
        return VerifyResult(ok=True, entries=len(entries))

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
    def _entries(db: sqlite3.Connection) -> list[Entry]:
        return [Entry.model_validate(dict(row))
                for row in db.execute("SELECT * FROM entries ORDER BY seq")]

    def _append(self, db: sqlite3.Connection, **fields: object) -> Entry:
        head = db.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        seq, prev_hash = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS)
        values = {"noise_multiplier": None, "sample_rate": None, "steps": None, "delta": None,
                  "ref": None, **fields, "seq": seq, "prev_hash": prev_hash,
                  "time": dt.datetime.now(dt.UTC).isoformat()}
        entry = Entry.model_validate({**values, "hash": entry_hash(values)})
        row = entry.model_dump()
        db.execute(f"INSERT INTO entries ({', '.join(row)}) VALUES "
                   f"({', '.join(':' + k for k in row)})", row)
        db.execute("INSERT OR REPLACE INTO head (id, seq, hash) VALUES (1, ?, ?)",
                   (entry.seq, entry.hash))
        return entry
