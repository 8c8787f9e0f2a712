"""Hash chains, the tamper evidence of the partner's ledger and the coordinator's audit log.

Every record carries its `seq` (1, 2, ...), the hash of the record before it (`prev_hash`,
GENESIS for the first) and its own `hash`: the sha256 of the canonical JSON of its other
fields. Editing, removing or re-ordering a record breaks the chain at that record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

GENESIS = "0" * 64


def canonical_json(value: object) -> bytes:
    """The one byte form that gets hashed or signed: sorted keys, no spaces, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def canonical_sha256(fields: Mapping[str, object]) -> str:
    """The hash of a chained record (or of any JSON-able value) without its own hash."""
    return hashlib.sha256(canonical_json(dict(fields))).hexdigest()


def record_hash(record: Mapping[str, object]) -> str:
    """What a record's `hash` must be: the hash of every other field."""
    return canonical_sha256({k: v for k, v in record.items() if k != "hash"})


@dataclass(frozen=True)
class ChainBreak:
    seq: int  # the first record that breaks the chain
    kind: Literal["missing", "link", "hash", "rule"]
    problem: str  # says what, without naming the record (callers add where)


def first_break(records: Iterable[Mapping[str, object]],
                rule: Callable[[Mapping[str, object]], str | None] | None = None
                ) -> ChainBreak | None:
    """Walk the chain from GENESIS; the first record that is out of sequence, does not
    link to the one before it, does not match its own hash, or breaks the caller's `rule`
    (checked once the record is known to be intact). None if the whole chain holds."""
    prev_hash = GENESIS
    for expected, record in enumerate(records, start=1):
        seq = int(record["seq"])  # type: ignore[call-overload]
        if seq != expected:
            return ChainBreak(min(seq, expected), "missing",
                              f"entry {expected} is missing (the next one is {seq})")
        if record["prev_hash"] != prev_hash:
            return ChainBreak(seq, "link", "its previous-hash does not match the entry before "
                                           "it (this entry or the one before it was altered)")
        if record["hash"] != record_hash(record):
            return ChainBreak(seq, "hash", "its content does not match its hash (edited)")
        if rule is not None and (problem := rule(record)) is not None:
            return ChainBreak(seq, "rule", problem)
        prev_hash = str(record["hash"])
    return None
