"""The coordinator's store: one database (SQLAlchemy, so the same code runs on SQLite, the
default, and PostgreSQL), its schema check, and its queries grouped by aggregate
(`store.runs`, `store.tokens`, ...). Every write is its own committed transaction, so what
a run did stays recorded if it later fails or dies. Run state changes are not here: they
are server/runs/lifecycle.py's alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from .audit_log import AuditLogQueries
from .base_models import BaseModelQueries
from .catalogue import CatalogueQueries
from .partners import PartnerQueries
from .privacy import PrivacyQueries
from .runs import RunQueries
from .tables import SCHEMA_VERSION, Base, Meta
from .tokens import TokenQueries


class StoreSchemaError(RuntimeError):
    """The database was written by a different version of Sangsaeng."""


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
        self._check_schema()
        self.runs = RunQueries(self.session)
        self.privacy = PrivacyQueries(self.session)
        self.tokens = TokenQueries(self.session)
        self.catalogue = CatalogueQueries(self.session)
        self.partners = PartnerQueries(self.session)
        self.base_models = BaseModelQueries(self.session)
        self.audit_log = AuditLogQueries(self.session, threading.Lock())

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
