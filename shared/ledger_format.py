"""The privacy ledger's format, shared by the partner that writes it and the auditor who
checks it: entries, their hash chain, and the signed export a partner hands to auditors.

Each entry is a *reserve* (one round's mechanism: sigma, q, steps, delta, written before
the round trains) or a *commit* naming a reserve whose update was handed to Flower. Every
entry carries the hash of the one before it and its own hash; the ledger's head (last
seq and hash) is kept beside the entries. Epsilon is never stored: it is recomputed from
the reserves by an accountant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .accounting import Mechanism, round_mechanisms
from .hash_chain import canonical_json, first_break, record_hash

RESERVE, COMMIT, EVALUATE = "reserve", "commit", "evaluate"


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    kind: Literal["reserve", "commit", "evaluate"]
    run_id: str  # the Flower run id
    round: int
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    delta: float | None = None
    task_sha256: str
    ref: int | None = None  # a commit's or an evaluation's reserve
    run_rounds: int | None = None  # a reserve's run plan: rounds declared ...
    plan_until: str | None = None  # ... and until when the rest of them stay promised
    time: str
    prev_hash: str
    hash: str
    # a reserve's evaluation release (one per round); None in entries written before
    # evaluation was DP, and then left out of the hash, so their chains still verify
    evaluation_noise_multiplier: float | None = None

    def mechanism(self) -> Mechanism:
        """A reserve's training mechanism (a commit has none: validation fails on it)."""
        return Mechanism.model_validate(
            {"noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
             "steps": self.steps})

    def mechanisms(self) -> list[Mechanism]:
        """Everything a reserve spends: its training and its round's evaluation."""
        training = self.mechanism()
        return round_mechanisms(training.noise_multiplier, training.sample_rate,
                                training.steps, self.evaluation_noise_multiplier)

    def expected_hash(self) -> str:
        return record_hash(hashed_fields(self.model_dump()))


def hashed_fields(values: dict[str, object]) -> dict[str, object]:
    """What an entry's hash covers: every field, but a None evaluation only if given."""
    if values.get("evaluation_noise_multiplier") is None:
        return {k: v for k, v in values.items() if k != "evaluation_noise_multiplier"}
    return values


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str | None = None


def verify_chain(rows: list[dict[str, object]], head: tuple[int, str] | None) -> VerifyResult:
    """Walk the chain from genesis; name the first entry that was edited, removed,
    re-ordered or made malformed, a reserve committed twice, or a last entry that
    disagrees with the head."""
    entries: list[Entry] = []
    for row in rows:
        try:
            entries.append(Entry.model_validate(row))
        except ValidationError:
            break
    reserves: set[int] = set()
    committed: set[int | None] = set()

    evaluable: set[int] = set()
    evaluated: set[int | None] = set()

    def commits_once(record: Mapping[str, object]) -> str | None:
        kind, seq, ref = record["kind"], record["seq"], record["ref"]
        if kind == COMMIT and ref not in reserves:
            return "it commits a reserve that is not in the ledger before it"
        if kind == COMMIT and ref in committed:
            return "it commits a reserve that was already committed"
        if kind == EVALUATE and ref not in evaluable:
            return "it evaluates for a reserve that is not before it or has no evaluation"
        if kind == EVALUATE and ref in evaluated:
            return "it evaluates a second time for one reserve"
        if kind == RESERVE:
            reserves.add(int(seq))  # type: ignore[call-overload]
            if record.get("evaluation_noise_multiplier"):
                evaluable.add(int(seq))  # type: ignore[call-overload]
        elif kind == COMMIT:
            committed.add(ref)  # type: ignore[arg-type]
        else:
            evaluated.add(ref)  # type: ignore[arg-type]
        return None

    broken = first_break((hashed_fields(e.model_dump()) for e in entries), rule=commits_once)
    if broken is not None:
        return VerifyResult(ok=False, entries=len(rows), first_broken_seq=broken.seq,
                            problem=broken.problem)
    if len(entries) < len(rows):
        return VerifyResult(ok=False, entries=len(rows), first_broken_seq=len(entries) + 1,
                            problem="it is malformed (a field was edited to an impossible "
                                    "value)")
    last = (entries[-1].seq, entries[-1].hash) if entries else None
    if head != last:  # name the head's entry if it is in range, else the first one missing
        seq = head[0] if head is not None and head[0] <= len(rows) else len(rows) + 1
        return VerifyResult(ok=False, entries=len(rows), first_broken_seq=seq,
                            problem="the ledger's head does not match its last entry "
                                    "(entries deleted or added at the end)")
    return VerifyResult(ok=True, entries=len(rows))


class Head(BaseModel):
    seq: int
    hash: str


class LedgerExport(BaseModel):
    """A partner's whole ledger of one dataset, as it stood when exported."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["sangsaeng-ledger-export/1"] = "sangsaeng-ledger-export/1"
    partner: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    delta: float = Field(gt=0, lt=1)  # the partner's delta for this dataset
    epsilon_cap: float = Field(gt=0)
    exported_at: str
    head: Head | None  # the ledger's own head row, checked against the last entry
    entries: list[dict[str, object]]  # raw rows: the auditor validates them itself
    public_key: str  # for reading only: auditors check against the registered key

    def signed_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))


class SignedLedgerExport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    export: LedgerExport
    signature: str  # Ed25519 over export.signed_bytes(), base64
