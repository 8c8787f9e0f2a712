"""The SQLAlchemy engine of a store URL: SQLite's folder made and its pragmas set, so every
opener (the Store, the upgrade command) talks to the database the same way."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # the demo reads while the ServerApp writes
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def store_engine(url: str) -> Engine:
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
