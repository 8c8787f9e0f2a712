"""Queries of runs and their rounds (a run's state changes are server/runs/lifecycle.py's)."""

from __future__ import annotations

from sqlalchemy import select

from .tables import RoundResult, Run, Sessions


class RunQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def get(self, run_id: int) -> Run:
        """A run with its rounds, privacy reports and model loaded."""
        with self.session() as s:
            run = s.get_one(Run, run_id)
            _ = run.rounds, run.privacy_reports, run.model
            return run

    def find(self, run_id: int, owner: str | None = None) -> Run | None:
        """Like get but without the model; None if there is no such run (or none of
        `owner`'s, if given: the same one query either way)."""
        query = select(Run).where(Run.id == run_id)
        if owner is not None:
            query = query.where(Run.owner == owner)
        with self.session() as s:
            run = s.scalar(query)
            if run is not None:
                _ = run.rounds, run.privacy_reports
            return run

    def by_flower_id(self, flower_run_id: int) -> Run | None:
        with self.session() as s:
            return s.scalar(select(Run).filter_by(flower_run_id=str(flower_run_id)))

    def list(self, owner: str | None = None, status: tuple[str, ...] = ()) -> list[Run]:
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

    def model(self, run_id: int) -> tuple[bytes | None, str | None]:
        """The run's model and its sha256, read together."""
        with self.session() as s:
            row = s.execute(select(Run.model, Run.model_sha256).where(Run.id == run_id)).one()
            return row[0], row[1]

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
