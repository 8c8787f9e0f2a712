"""Queries of the dataset catalogue (schemas and rounded sizes, never rows)."""

from __future__ import annotations

from sqlalchemy import delete, select

from .tables import Dataset, Sessions, now


class CatalogueQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def put(self, name: str, entry_json: str) -> None:
        with self.session() as s:
            s.merge(Dataset(name=name, entry_json=entry_json, updated_at=now()))

    def remove(self, name: str) -> bool:
        """Take an entry out of the catalogue; False if there is none. Nothing refers to
        it by key: runs carry their own task, privacy records name the dataset as text."""
        with self.session() as s:
            result = s.execute(delete(Dataset).where(Dataset.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def list(self) -> list[Dataset]:
        with self.session() as s:
            return list(s.scalars(select(Dataset).order_by(Dataset.name)))

    def get(self, name: str) -> Dataset | None:
        with self.session() as s:
            return s.get(Dataset, name)
