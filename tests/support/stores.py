"""The coordinator's store as tests reach it from outside the Store: a raw connection (what
someone with the database's credentials can do), a store written before migrations, the
schema at a chosen revision, the append-only guards, and a copy to tamper with. The same
calls work on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import make_url

from sangsaeng.server.db import schema
from sangsaeng.server.db.engine import store_engine
from sangsaeng.server.db.schema_lock import schema_lock

from .postgres import bindir

LEGACY = Path(__file__).with_name("legacy")


def backend(url: str) -> str:
    return make_url(url).get_backend_name()


def raw(url: str) -> Any:
    """A DB-API connection in autocommit (sqlite3's or psycopg's; both have execute())."""
    parsed = make_url(url)
    if backend(url) == "sqlite":
        return sqlite3.connect(parsed.database or ":memory:", isolation_level=None)
    return psycopg.connect(parsed.set(drivername="postgresql")
                           .render_as_string(hide_password=False), autocommit=True)


@contextmanager
def connected(url: str) -> Iterator[Any]:
    """raw(url), closed at the end of the block."""
    with closing(raw(url)) as db:
        yield db


def contents(url: str) -> bytes:
    """Every byte someone with a copy of the store holds: SQLite's file and its WAL, or
    what pg_dump writes."""
    if backend(url) == "sqlite":
        path = Path(make_url(url).database or "")
        return b"".join(p.read_bytes() for p in (path, path.with_name(f"{path.name}-wal"))
                        if p.exists())
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run([str(bindir() / "pg_dump"), "--dbname", libpq], check=True,
                          capture_output=True, timeout=120).stdout


def load_before_migrations(url: str, version: str) -> None:
    """Fill an empty database with a store as the release with schema `version` wrote it
    (legacy/: its own dump, a run and its records in it)."""
    script = (LEGACY / f"store-{version}.{backend(url)}.sql").read_text()
    with connected(url) as db:
        if backend(url) == "sqlite":
            db.executescript(script)
        else:
            db.execute(script)


def migrate(url: str, revision: str) -> None:
    """Run the revisions (up or down) to `revision`, as the upgrade command runs them."""
    engine = store_engine(url)
    try:
        with schema_lock(engine) as conn:
            order = ["base", *schema.known_revisions()]
            current = schema.find(conn, url).revision or "base"
            config = schema.alembic_config(conn)
            if order.index(revision) >= order.index(current):
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = store_engine(url)
    try:
        with engine.connect() as conn:
            return schema.find(conn, url).revision
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = store_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def triggers(url: str) -> set[tuple[str, str]]:
    """(table, trigger) of every trigger the database has."""
    with connected(url) as db:
        if backend(url) == "sqlite":
            rows = db.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
        else:
            rows = db.execute("SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
                              "WHERE NOT tgisinternal")
        return {(table, name) for table, name in rows.fetchall()}


def drop_guards(db: Any, table: str) -> None:
    """Drop `table`'s append-only triggers, as its owner can (`db`: a raw connection)."""
    if isinstance(db, sqlite3.Connection):
        for verb in ("update", "delete"):
            db.execute(f"DROP TRIGGER {table}_no_{verb}")
    else:
        for verb in ("update", "delete", "truncate"):
            db.execute(f"DROP TRIGGER {table}_no_{verb} ON {table}")


def transfer(source: str, target: str) -> None:
    """Every row of the store at `source` into a new store at `target` (on another backend,
    say), ids, times and hashes as they were."""
    from sangsaeng.server.db import Store
    from sangsaeng.server.db.tables import Base

    Store(target).engine.dispose()  # empty, at the head revision
    reading, writing = store_engine(source), store_engine(target)
    with reading.connect() as read, writing.begin() as write:
        for table in Base.metadata.sorted_tables:
            rows = [dict(row._mapping) for row in read.execute(select(table))]
            if rows:
                write.execute(insert(table), rows)
            if backend(target) == "postgresql" and table.autoincrement_column is not None:
                write.execute(text(  # the next id comes after the copied ones
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"coalesce(max(id), 0) + 1, false) FROM {table.name}"))
    reading.dispose()
    writing.dispose()


def copy_store(url: str, directory: Path) -> str:
    """A copy of the store, for one test to change; its URL."""
    if backend(url) == "sqlite":
        target = directory / "store-copy.db"
        with connected(url) as source, closing(sqlite3.connect(target)) as copy:
            source.backup(copy)  # whatever is still in the WAL too
        return f"sqlite:///{target}"
    parsed = make_url(url)
    name = f"{parsed.database}_copy_{directory.name}"[:63]
    with connected(parsed.set(database="postgres").render_as_string(hide_password=False)
                   ) as admin:
        # a template must have no other session: stores the tests left open hold some
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", [parsed.database])
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def differences(url: str) -> list[Any]:
    """What Alembic finds between the database and the tables tables.py declares (tables,
    columns and their types, nullability, keys, indexes, unique constraints)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from sangsaeng.server.db.tables import Base

    engine = store_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()
