"""The coordinator's records: runs, per-round metrics, partners' privacy reports, models,
API tokens, the dataset catalogue, partners' public keys and the audit log.

SQLAlchemy, so the same code runs on SQLite (default) and PostgreSQL. Every write is its
own committed transaction, so what a run did stays recorded if it later fails or dies.
Privacy reports and the audit log are append-only: on SQLite, triggers refuse UPDATE and
DELETE; the audit log is also hash-chained, so auditors detect what slips past them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    create_engine,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from sangsaeng.shared.accounting import PrivacyReport
from sangsaeng.shared.ledger_format import GENESIS, canonical_sha256
from sangsaeng.shared.task import TaskSpec

STARTING, RUNNING = "starting", "running"  # open: before/after Flower accepted the run
COMPLETED, FAILED, STOPPED = "completed", "failed", "stopped"  # ended, for good
OPEN = (STARTING, RUNNING)
SCHEMA_VERSION = "4"
AUDIT_APPEND_ATTEMPTS = 50


class StoreSchemaError(RuntimeError):
    """The database was written by a different version of Sangsaeng."""


def _now() -> dt.datetime:
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
    status: Mapped[str] = mapped_column(String(16), default=STARTING)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(default=_now)
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
    recorded_at: Mapped[dt.datetime] = mapped_column(default=_now)


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
    delta: Mapped[float] = mapped_column(Float)
    epsilon: Mapped[float] = mapped_column(Float)  # this dataset, this run
    lifetime_epsilon: Mapped[float] = mapped_column(Float)  # this dataset, all runs
    epsilon_cap: Mapped[float] = mapped_column(Float)
    ledger_seq: Mapped[int] = mapped_column(Integer)  # the partner ledger's head, to check
    ledger_hash: Mapped[str] = mapped_column(String(64))  # it against later (verify --expect)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=_now)


class ApiToken(Base):
    """A bearer token of the API. Only its sha256 is kept: tokens are 256 random bits, so
    a plain hash cannot be brute-forced, and the database never holds a usable secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))  # admin | startup | auditor
    tenant: Mapped[str | None] = mapped_column(String(100))  # startups only
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class Dataset(Base):
    """A catalogue entry: a dataset's public schema and rounded size, never its rows."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    entry_json: Mapped[str] = mapped_column(Text)  # catalogue.DatasetEntry
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now)


class Partner(Base):
    """A partner enterprise and the Ed25519 public key its ledger exports are signed with."""

    __tablename__ = "partners"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the 32 raw bytes
    registered_at: Mapped[dt.datetime] = mapped_column(default=_now)


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


for _table in ("privacy_records", "audit_log"):
    for _verb in ("UPDATE", "DELETE"):
        event.listen(Base.metadata.tables[_table], "after_create", DDL(
            f"CREATE TRIGGER {_table}_no_{_verb.lower()} BEFORE {_verb} ON {_table} "
            f"BEGIN SELECT RAISE(ABORT, '{_table} is append-only'); END"
        ).execute_if(dialect="sqlite"))


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # the demo reads while the ServerApp writes
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self._audit_lock = threading.Lock()  # one appender at a time in this process
        self.engine: Engine = create_engine(url)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._check_schema()

    def _check_schema(self) -> None:
        """Create the tables in a new database; refuse one another version wrote (tables
        are never altered in place)."""
        tables = set(inspect(self.engine).get_table_names())
        if tables and "meta" not in tables:
            raise StoreSchemaError(f"the store {self.engine.url!r} was written by an older "
                                   "Sangsaeng; move it away (or point SANGSAENG_STORE_URL "
                                   "elsewhere) to start a new one")
        Base.metadata.create_all(self.engine)
        with self.session() as s:
            version = s.get(Meta, "schema_version")
            if version is None:
                s.add(Meta(key="schema_version", value=SCHEMA_VERSION))
            elif version.value != SCHEMA_VERSION:
                raise StoreSchemaError(f"the store {self.engine.url!r} has schema version "
                                       f"{version.value}, this Sangsaeng needs {SCHEMA_VERSION}")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # --- writes (each one committed on its own) ---------------------------------------

    def create_run(self, task: TaskSpec, owner: str | None) -> int:
        """A STARTING run, before Flower is asked to start it (see runs.start_run)."""
        with self.session() as s:
            run = Run(owner=owner, dataset=task.dataset, task_json=task.to_json(),
                      task_sha256=task.sha256())
            s.add(run)
            s.flush()
            return run.id

    def mark_started(self, run_id: int, flower_run_id: int) -> bool:
        """Bind an open run to its Flower run (called by runs.start_run once Flower accepted
        it, and by the ServerApp when it starts, in either order). False if the run has
        ended meanwhile (stopped while starting) or is bound to another Flower run."""
        with self.session() as s:
            bound = s.execute(
                update(Run).where(Run.id == run_id, Run.status.in_(OPEN),
                                  (Run.flower_run_id.is_(None))
                                  | (Run.flower_run_id == str(flower_run_id)))
                .values(flower_run_id=str(flower_run_id)))
            s.execute(update(Run).where(Run.id == run_id, Run.status == STARTING,
                                        Run.flower_run_id == str(flower_run_id))
                      .values(status=RUNNING))
            return bool(bound.rowcount)  # type: ignore[attr-defined]

    def record_round(self, run_id: int, round_: int, **fields: object) -> None:
        """Create or update the round's row; `metrics` are merged into what is there and
        `partner_errors` appended."""
        with self.session() as s:
            row = s.scalar(select(RoundResult).filter_by(run_id=run_id, round=round_))
            if row is None:
                row = RoundResult(run_id=run_id, round=round_, metrics={}, partner_errors=[])
                s.add(row)
            row.metrics = {**row.metrics, **fields.pop("metrics", {})}  # type: ignore[dict-item]
            row.partner_errors = [*row.partner_errors,
                                  *fields.pop("partner_errors", [])]  # type: ignore[misc]
            for key, value in fields.items():
                setattr(row, key, value)

    def add_privacy_reports(self, run_id: int, round_: int,
                            reports: list[tuple[int, PrivacyReport]]) -> None:
        """Record (node id, report) pairs of one round, all or none."""
        with self.session() as s:
            s.add_all(PrivacyRecord(run_id=run_id, round=round_, node_id=str(node_id),
                                    **report.model_dump()) for node_id, report in reports)

    def end_run(self, run_id: int, status: str, reason: str | None = None,
                model: bytes | None = None) -> bool:
        """Close an open run as COMPLETED (with its model), FAILED or STOPPED (with the
        reason). The first end recorded wins; returns whether this call closed the run."""
        with self.session() as s:
            digest = None if model is None else hashlib.sha256(model).hexdigest()
            result = s.execute(update(Run).where(Run.id == run_id, Run.status.in_(OPEN))
                               .values(status=status, reason=reason, model=model,
                                       model_sha256=digest, finished_at=_now()))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def add_token(self, name: str, role: str, tenant: str | None, token_sha256: str) -> int:
        with self.session() as s:
            token = ApiToken(name=name, role=role, tenant=tenant, token_sha256=token_sha256)
            s.add(token)
            s.flush()
            return token.id

    def revoke_token(self, token_id: int) -> bool:
        with self.session() as s:
            result = s.execute(update(ApiToken).where(ApiToken.id == token_id,
                                                      ApiToken.revoked_at.is_(None))
                               .values(revoked_at=_now()))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def put_dataset(self, name: str, entry_json: str) -> None:
        with self.session() as s:
            s.merge(Dataset(name=name, entry_json=entry_json, updated_at=_now()))

    def put_partner(self, name: str, public_key: str, replace: bool = False) -> bool:
        """Register a partner's public key; False if it has one and `replace` is not set."""
        with self.session() as s:
            row = s.get(Partner, name)
            if row is not None and not replace:
                return False
            s.merge(Partner(name=name, public_key=public_key, registered_at=_now()))
            return True

    def append_audit(self, *, actor: str, role: str | None, tenant: str | None, action: str,
                     outcome: str, detail: str | None = None) -> AuditEntry:
        """Append to the hash-chained audit log. Two writers (the API and an operator's
        CLI) may race for the next seq: the loser's insert fails on the primary key (or on
        SQLite's lock) and it tries again on the new head."""
        attempt = 0
        while True:
            try:
                with self._audit_lock, self.session() as s:
                    last = s.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
                    entry = AuditEntry(seq=last.seq + 1 if last else 1, time=_now().isoformat(),
                                       actor=actor, role=role, tenant=tenant, action=action,
                                       outcome=outcome, detail=detail,
                                       prev_hash=last.hash if last else GENESIS)
                    entry.hash = canonical_sha256(entry.chained_fields())
                    s.add(entry)
                return entry
            except (IntegrityError, OperationalError):
                attempt += 1
                if attempt == AUDIT_APPEND_ATTEMPTS:
                    raise
                time.sleep(0.01 * attempt)

    # --- reads ------------------------------------------------------------------------

    def list_partners(self) -> list[Partner]:
        with self.session() as s:
            return list(s.scalars(select(Partner).order_by(Partner.name)))

    def audit_log(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries with seq > `after`, oldest first, at most `limit`."""
        with self.session() as s:
            return list(s.scalars(select(AuditEntry).where(AuditEntry.seq > after)
                                  .order_by(AuditEntry.seq).limit(limit)))

    def privacy_records(self) -> list[PrivacyRecord]:
        """Every partner's privacy report, in the order the coordinator recorded them."""
        with self.session() as s:
            return list(s.scalars(select(PrivacyRecord).order_by(PrivacyRecord.id)))

    def token_by_sha256(self, token_sha256: str) -> ApiToken | None:
        with self.session() as s:
            return s.scalar(select(ApiToken).filter_by(token_sha256=token_sha256))

    def list_tokens(self) -> list[ApiToken]:
        with self.session() as s:
            return list(s.scalars(select(ApiToken).order_by(ApiToken.id)))

    def list_datasets(self) -> list[Dataset]:
        with self.session() as s:
            return list(s.scalars(select(Dataset).order_by(Dataset.name)))

    def get_dataset(self, name: str) -> Dataset | None:
        with self.session() as s:
            return s.get(Dataset, name)

    def run_by_flower_id(self, flower_run_id: int) -> Run | None:
        with self.session() as s:
            return s.scalar(select(Run).filter_by(flower_run_id=str(flower_run_id)))

    def get_run(self, run_id: int) -> Run:
        """A run with its rounds, privacy reports and model loaded."""
        with self.session() as s:
            run = s.get_one(Run, run_id)
            _ = run.rounds, run.privacy_reports, run.model
            return run

    def get_model(self, run_id: int) -> tuple[bytes | None, str | None]:
        """The run's model and its sha256, read together."""
        with self.session() as s:
            row = s.execute(select(Run.model, Run.model_sha256).where(Run.id == run_id)).one()
            return row[0], row[1]

    def find_run(self, run_id: int, owner: str | None = None) -> Run | None:
        """Like get_run but without the model; None if there is no such run (or none of
        `owner`'s, if given: the same one query either way)."""
        query = select(Run).where(Run.id == run_id)
        if owner is not None:
            query = query.where(Run.owner == owner)
        with self.session() as s:
            run = s.scalar(query)
            if run is not None:
                _ = run.rounds, run.privacy_reports
            return run

    def list_runs(self, owner: str | None = None, status: tuple[str, ...] = ()) -> list[Run]:
        """Runs (oldest first), with rounds and reports; only `owner`'s if given, only in
        `status` if given."""
        query = select(Run).order_by(Run.id)
        if owner is not None:
            query = query.where(Run.owner == owner)
        if status:
            query = query.where(Run.status.in_(status))
        with self.session() as s:
            runs = list(s.scalars(query))
            for run in runs:
                _ = run.rounds, run.privacy_reports
            return runs
