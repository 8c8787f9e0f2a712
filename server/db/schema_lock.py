"""One schema change at a time, across processes: PostgreSQL's pg_advisory_lock, held by
the migrating connection's session, or an exclusive file lock beside an SQLite database.
Whoever gets it must read the schema again: the process it waited for may have done the
work already."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

# pg_advisory_lock's two keys: "SANG" "STOR". Advisory locks are per database, so stores
# on one server do not wait for each other.
ADVISORY_KEYS = {"a": 0x53414E47, "b": 0x53544F52}


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction, the only one allowed to change the store's schema
    until the block ends: committed then, rolled back if the block raises."""
    backend = engine.dialect.name
    if backend == "postgresql":
        with engine.connect() as conn:
            try:
                conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), ADVISORY_KEYS)
                conn.commit()
                with conn.begin():
                    yield conn
            finally:
                conn.invalidate()  # the session ends, and its lock with it, whatever happened
    elif backend == "sqlite":
        with _file_lock(engine.url.database), engine.connect() as conn, \
                _sqlite_transaction(conn):
            yield conn
    else:
        raise RuntimeError(f"the store runs on SQLite or PostgreSQL, not {backend}")


def _file_lock(database: str | None) -> AbstractContextManager[None]:
    if database in (None, "", ":memory:"):
        return nullcontext()  # an in-memory database is this process's alone
    return _flock(f"{database}.lock")


@contextmanager
def _flock(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, even if this process dies
        yield
    finally:
        os.close(fd)


@contextmanager
def _sqlite_transaction(conn: Connection) -> Iterator[None]:
    """Python's sqlite3 commits before every DDL statement: with its own transaction
    handling off and an explicit BEGIN, a migration is all or nothing."""
    raw = conn.connection.driver_connection
    level = raw.isolation_level  # type: ignore[union-attr]
    raw.isolation_level = None  # type: ignore[union-attr]
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    finally:
        raw.isolation_level = level  # type: ignore[union-attr]
