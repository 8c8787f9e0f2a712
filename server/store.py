"""The coordinator's records: runs, per-round metrics, partners' privacy reports, models.

SQLAlchemy, so the same code runs on SQLite (default) and PostgreSQL. Every write is its
own committed transaction, so what a run did stays recorded if it later fails or dies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from sangsaeng.shared.accounting import PrivacyReport

RUNNING, COMPLETED, FAILED, STOPPED = "running", "completed", "failed", "stopped"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flower_run_id: Mapped[str] = mapped_column(String(32), unique=True)
    dataset: Mapped[str] = mapped_column(String(200))
    task_json: Mapped[str] = mapped_column(Text)
    task_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    model: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # safetensors
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
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


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
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


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
        self.engine: Engine = create_engine(url)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # --- writes (each one committed on its own) ---------------------------------------

    def start_run(self, flower_run_id: int, dataset: str, task_json: str, task_sha256: str) -> int:
        with self.session() as s:
            run = Run(flower_run_id=str(flower_run_id), dataset=dataset, task_json=task_json,
                      task_sha256=task_sha256)
            s.add(run)
            s.flush()
            return run.id

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
                model: bytes | None = None) -> None:
        """Close a run as COMPLETED (with its model), FAILED or STOPPED (with the reason)."""
        with self.session() as s:
            run = s.get_one(Run, run_id)
            run.status, run.reason, run.model, run.finished_at = status, reason, model, _now()

    # --- reads ------------------------------------------------------------------------

    def run_by_flower_id(self, flower_run_id: int) -> Run | None:
        with self.session() as s:
            return s.scalar(select(Run).filter_by(flower_run_id=str(flower_run_id)))

    def get_run(self, run_id: int) -> Run:
        """A run with its rounds and privacy reports loaded."""
        with self.session() as s:
            run = s.get_one(Run, run_id)
            _ = run.rounds, run.privacy_reports
            return run

    def list_runs(self) -> list[Run]:
        with self.session() as s:
            return list(s.scalars(select(Run).order_by(Run.id)))
