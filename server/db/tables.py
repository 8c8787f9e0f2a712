"""The coordinator's tables: runs, per-round metrics, partners' privacy reports, models,
startups' base models, API tokens, the dataset catalogue, partners' public keys and the audit log.

Privacy reports and the audit log are append-only: triggers refuse UPDATE and DELETE (and
TRUNCATE, on PostgreSQL); the audit log is also hash-chained, so auditors detect what slips
past them. A database gets these tables from the migrations (migrations/), or, when it is
empty, straight from here (create_all): a test proves both give the same schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import (
    DDL,
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

Sessions = Callable[[], AbstractContextManager[Session]]  # Store.session, for the queries
# The largest id or seq an Integer column holds on PostgreSQL (SQLite's hold 64 bits): a
# caller's larger number names nothing, and must not reach a query (it would fail there).
MAX_ID = 2**31 - 1


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that always reads back as aware UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect
                           ) -> dt.datetime | None:
        return None if value is None else value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect
                             ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UtcDateTime}


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = {"sqlite_autoincrement": True}  # an id is never given out twice

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flower_run_id: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    owner: Mapped[str | None] = mapped_column(String(100), index=True)  # the startup tenant
    dataset: Mapped[str] = mapped_column(String(200))
    task_json: Mapped[str] = mapped_column(Text)
    task_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # runs/states.py; set by runs/lifecycle.py
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(default=now)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    # safetensors; deferred: lists of runs never load the weights
    model: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    model_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    rounds: Mapped[list[RoundResult]] = relationship(order_by="RoundResult.round")
    privacy_reports: Mapped[list[PrivacyRecord]] = relationship(
        order_by="(PrivacyRecord.round, PrivacyRecord.partner)"
    )


class RoundResult(Base):
    """Aggregates of one round: FedAvg-weighted holdout metrics reported by partners."""

    __tablename__ = "round_results"
    __table_args__ = (UniqueConstraint("run_id", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    round: Mapped[int] = mapped_column(Integer)
    trained_nodes: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_nodes: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    partner_errors: Mapped[list[str]] = mapped_column(JSON, default=list)  # refusals and errors
    recorded_at: Mapped[dt.datetime] = mapped_column(default=now)


class PrivacyRecord(Base):
    """One partner's PrivacyReport for one round: the mechanism it ran, its cumulative ε."""

    __tablename__ = "privacy_records"
    __table_args__ = (UniqueConstraint("run_id", "round", "node_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    round: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(32))
    partner: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(200))
    noise_multiplier: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[float] = mapped_column(Float)
    steps: Mapped[int] = mapped_column(Integer)
    evaluation_noise_multiplier: Mapped[float] = mapped_column(Float)
    trained_parameters: Mapped[int] = mapped_column(Integer)
    delta: Mapped[float] = mapped_column(Float)
    epsilon: Mapped[float] = mapped_column(Float)  # this dataset, this run
    lifetime_epsilon: Mapped[float] = mapped_column(Float)  # this dataset, all runs
    epsilon_cap: Mapped[float] = mapped_column(Float)
    ledger_seq: Mapped[int] = mapped_column(Integer)  # the partner ledger's head, to check
    ledger_hash: Mapped[str] = mapped_column(String(64))  # it against later (verify --expect)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=now)


class BaseModelRecord(Base):
    """Weights a startup uploaded for its runs to start from: safetensors, re-serialised
    canonically (shared/models.py, to_safetensors), named by the sha256 of those bytes."""

    __tablename__ = "base_models"
    __table_args__ = (UniqueConstraint("owner", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(100), index=True)  # the startup tenant
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    tensors: Mapped[list[dict[str, object]]] = mapped_column(JSON)  # name, dtype, shape
    weights: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=now)


class ApiToken(Base):
    """A bearer token of the API. Only its sha256 is kept: tokens are 256 random bits, so
    a plain hash cannot be brute-forced, and the database never holds a usable secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))  # admin | startup | auditor
    tenant: Mapped[str | None] = mapped_column(String(100))  # startups only
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class WebSession(Base):
    """A dashboard sign-in: the browser holds a random secret (only its sha256 is kept),
    standing for the API token it signed in with until it ends (sign-out), expires, or
    that token is revoked."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    expires_at: Mapped[dt.datetime] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column()


class Dataset(Base):
    """A catalogue entry: a dataset's public schema and rounded size, never its rows."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    entry_json: Mapped[str] = mapped_column(Text)  # shared/rest/catalogue.py DatasetEntry
    updated_at: Mapped[dt.datetime] = mapped_column(default=now)


class Partner(Base):
    """A partner enterprise: the Ed25519 public key its ledger exports are signed with, and
    the node key its SuperNode authenticates with (Flower's SuperNode authentication).

    A removed partner keeps its row: its old privacy records and ledger exports stay
    verifiable, and the node id still names whose replies were in flight."""

    __tablename__ = "partners"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the 32 raw bytes
    # OpenSSH ECDSA public key ("ecdsa-sha2-nistp384 AAAA..."); None: it cannot join runs
    node_key: Mapped[str | None] = mapped_column(String(1000), unique=True, default=None)
    node_id: Mapped[str | None] = mapped_column(String(32), default=None)  # the SuperLink's
    registered_at: Mapped[dt.datetime] = mapped_column(default=now)
    removed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One action on the coordinator (an API request, or an operator's CLI command): who,
    what, when, and how it ended, chained by hash to the entry before it."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, hashed as written
    actor: Mapped[str] = mapped_column(String(200))  # a token's holder, or who it was not
    role: Mapped[str | None] = mapped_column(String(16))
    tenant: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(500))  # "POST /api/v1/runs", "cli: ..."
    outcome: Mapped[str] = mapped_column(String(200))  # HTTP status, or the CLI's result
    detail: Mapped[str | None] = mapped_column(String(500))  # e.g. the run it created
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    CHAINED = ("seq", "time", "actor", "role", "tenant", "action", "outcome", "detail",
               "prev_hash")

    def chained_fields(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.CHAINED}


APPEND_ONLY = ("privacy_records", "audit_log")

# PostgreSQL: one function every guard calls. Its error is an integrity violation, as
# SQLite's RAISE(ABORT) is, so both backends refuse with the same exception.
_REFUSE = DDL(
    "CREATE OR REPLACE FUNCTION sangsaeng_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME "
    "USING ERRCODE = 'integrity_constraint_violation'; END $$"
).execute_if(dialect="postgresql")

for _table in APPEND_ONLY:
    _events = Base.metadata.tables[_table]
    for _verb in ("UPDATE", "DELETE"):
        event.listen(_events, "after_create", DDL(
            f"CREATE TRIGGER {_table}_no_{_verb.lower()} BEFORE {_verb} ON {_table} "
            f"BEGIN SELECT RAISE(ABORT, '{_table} is append-only'); END"
        ).execute_if(dialect="sqlite"))
    event.listen(_events, "after_create", _REFUSE)
    # TRUNCATE fires no row triggers: it has a guard of its own
    for _verb, _each in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
        event.listen(_events, "after_create", DDL(
            f"CREATE TRIGGER {_table}_no_{_verb.lower()} BEFORE {_verb} ON {_table} "
            f"FOR EACH {_each} EXECUTE FUNCTION sangsaeng_append_only()"
        ).execute_if(dialect="postgresql"))
